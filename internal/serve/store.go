package serve

import (
	"context"
	"log/slog"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/pgstore"
)

// openStore opens the store --store names: the upstream files, or the
// PostgreSQL store (whose key file must be private). close releases it.
// opts are the store's options for the files; the PostgreSQL store gets
// them too, with its backend.
func openStore(ctx context.Context, cfg *config, opts core.StoreOptions, log *slog.Logger) (store *core.Store, close func(), err error) {
	if cfg.store == "" {
		s, err := core.NewStore(opts)
		return s, func() {}, err
	}
	keys, err := pgstore.LoadKeyFile(cfg.storeKeyFile)
	if err != nil {
		return nil, nil, err
	}
	pg, err := pgstore.Open(ctx, pgstore.Options{ConnString: cfg.store, Keys: keys, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	opts.Backend = pg.Backend()
	s, err := core.NewStore(opts)
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
