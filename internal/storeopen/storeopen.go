// Package storeopen opens the store a command line names: the upstream
// files (the default) or the PostgreSQL store shared by several machines
// (--store postgres://… with --store-key-file). The server and the
// terminal commands (status, statusline, accounts, login, add-key) open
// their store here, so they read one pool the same way.
package storeopen

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/pgstore"
)

// Spec names a store: URL is "" for the files, else a postgres:// (or
// postgresql://) connection string, which needs KeyFile, the key file
// that encrypts its tokens. Host names this machine in the shared pool
// (its main account and main section are kept per host); "" means the
// machine's host name. Two pools on one machine with different homes (two
// users, or a test) give each its own Host, or their main accounts share
// one row.
type Spec struct {
	URL     string
	KeyFile string
	Host    string
}

// Parse checks --store, --store-key-file and --store-host: "" or "files"
// is the files, a postgres:// or postgresql:// URL the PostgreSQL store,
// which needs a key file. Errors never repeat the connection string, which
// may hold a password.
func Parse(store, keyFile, host string) (Spec, error) {
	s := strings.TrimSpace(store)
	switch {
	case s == "" || s == "files":
		return Spec{}, nil
	case strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://"):
		if strings.TrimSpace(keyFile) == "" {
			return Spec{}, fmt.Errorf("--store postgres://… needs --store-key-file (or ACCTPOOL_STORE_KEY_FILE): the key file that encrypts the tokens in the database (create one with: acctpool store keygen FILE)")
		}
		host = strings.TrimSpace(host)
		if len(host) > 255 || strings.ContainsFunc(host, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return Spec{}, fmt.Errorf("--store-host (or ACCTPOOL_STORE_HOST): want a name of at most 255 printable characters that names this machine in the shared pool")
		}
		return Spec{URL: s, KeyFile: keyFile, Host: host}, nil
	default:
		return Spec{}, fmt.Errorf("--store: want files or a postgres:// URL")
	}
}

// Shared reports whether the spec names the PostgreSQL store.
func (s Spec) Shared() bool { return s.URL != "" }

// Open opens the store: the files of opts.Paths, or the PostgreSQL store
// (whose key file must be private) with opts.Paths kept for what stays on
// this machine (the journals of its rotations, its main account's lock).
// follow keeps the store's view current with other machines' commits (a
// server); a one-shot command passes false. close releases the store.
func Open(ctx context.Context, spec Spec, opts core.StoreOptions, follow bool) (store *core.Store, close func(), err error) {
	if !spec.Shared() {
		s, err := core.NewStore(opts)
		return s, func() {}, err
	}
	pg, err := OpenPostgres(ctx, spec, opts.Logger, follow)
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

// OpenPostgres opens the PostgreSQL store spec names, with its key file
// (refused unless private to its owner), for commands that work on the
// database itself (store import and export) and for Open.
func OpenPostgres(ctx context.Context, spec Spec, log *slog.Logger, follow bool) (*pgstore.Store, error) {
	if !spec.Shared() {
		return nil, fmt.Errorf("--store (or ACCTPOOL_STORE) must be a postgres:// URL")
	}
	keys, err := pgstore.LoadKeyFile(spec.KeyFile)
	if err != nil {
		return nil, err
	}
	return pgstore.Open(ctx, pgstore.Options{ConnString: spec.URL, Keys: keys, Host: spec.Host, Logger: log, NoFollow: !follow})
}
