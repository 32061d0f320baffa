package serve

import (
	"context"
	"log/slog"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/store/postgres"
)

// openStore opens the store --store names: the upstream files, or the
// PostgreSQL store (whose key file must be private). close releases it.
func openStore(ctx context.Context, cfg *config, log *slog.Logger) (store *core.Store, close func(), err error) {
	if cfg.store == "" {
		s, err := core.NewStore(core.StoreOptions{Paths: cfg.paths, Logger: log})
		return s, func() {}, err
	}
	keys, err := postgres.LoadKeyFile(cfg.storeKeyFile)
	if err != nil {
		return nil, nil, err
	}
	pg, err := postgres.Open(ctx, postgres.Options{ConnString: cfg.store, Keys: keys, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	s, err := core.NewStore(core.StoreOptions{Paths: cfg.paths, Logger: log, Backend: pg.Backend()})
	if err != nil {
		pg.Close()
		return nil, nil, err
	}
	return s, pg.Close, nil
}

// andThen runs first, then second.
func andThen(first, second func()) func() {
	return func() {
		first()
		second()
	}
}
