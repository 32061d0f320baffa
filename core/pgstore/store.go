package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// Options configure [Open].
type Options struct {
	// ConnString is a postgres:// URL or a key=value connection string.
	ConnString string
	// Keys encrypt the tokens; required (see [LoadKeyFile]).
	Keys *Keys
	// Host names this machine: its main account and the state's main
	// section are kept per host, never shared. Empty means os.Hostname.
	Host string
	// Logger receives diagnostics; nil discards them.
	Logger *slog.Logger
	// MaxConns bounds the pool; 0 means 10. Each held refresh lock keeps
	// one connection for the length of its token call.
	MaxConns int32
	// NoFollow skips the background watch that keeps [Store.Generation]
	// current and feeds [Store.Subscribe] (for one-shot commands such as
	// import and export).
	NoFollow bool
}

// Store is the PostgreSQL store: the upstream config and state files'
// content kept in tables (see schema.go), shared by every machine that
// opens the same database. Its Load, UpdateState and UpdateConfig behave as
// the file store's: writers are serialized by row locks and re-read under
// them, so concurrent writers on any machine never lose each other's
// changes.
type Store struct {
	pool     *pgxpool.Pool
	keys     *Keys
	host     string
	origin   string // this Store's id in change rows
	log      *slog.Logger
	redacted string
	gen      atomic.Uint64

	follow follower  // the watch behind Generation and Subscribe
	stale  staleRead // the last snapshot, served while the database is away
}

// Open connects, creates or migrates the schema (refusing a newer one),
// and returns the store. A database that cannot be reached is an error
// naming the redacted connection string.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Keys == nil {
		return nil, errors.New("the postgres store needs a key file to encrypt tokens: pass --store-key-file or set ACCTPOOL_STORE_KEY_FILE")
	}
	redacted := RedactConnString(opts.ConnString)
	cfg, err := pgxpool.ParseConfig(opts.ConnString)
	if err != nil {
		return nil, fmt.Errorf("store connection string %s is invalid: %s", redacted, redactErr(err, opts.ConnString))
	}
	host := opts.Host
	if host == "" {
		if host, err = os.Hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 10
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = fmt.Sprintf("acctpool %s pid %d", host, os.Getpid())
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open the postgres store at %s: %s", redacted, redactErr(err, opts.ConnString))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot reach the postgres store at %s: %s; check that the server runs and accepts this address and user", redacted, redactErr(err, opts.ConnString))
	}
	s := &Store{pool: pool, keys: opts.Keys, host: host, origin: randomID(), log: log, redacted: redacted}
	from, err := migrate(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	if from != SchemaVersion {
		log.Info("store schema migrated", "from", from, "to", SchemaVersion)
	}
	if n, err := s.Rekey(ctx); err != nil {
		pool.Close()
		return nil, err
	} else if n > 0 {
		log.Info("store tokens re-encrypted with the current key", "accounts", n)
	}
	if !opts.NoFollow {
		s.startFollowing()
	}
	return s, nil
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Close stops the background watch and closes the pool; held locks die
// with their connections.
func (s *Store) Close() {
	s.stopFollowing()
	s.pool.Close()
}

// String names the store with the password redacted, for start logs.
func (s *Store) String() string { return "postgres " + s.redacted }

// Host is the host name under which this store keeps its main account.
func (s *Store) Host() string { return s.host }

// Origin identifies this Store in [Change] records, so a watcher can tell
// its own writes from other machines'.
func (s *Store) Origin() string { return s.origin }

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Load reads the configuration and state in one consistent read and
// returns the merged snapshot, as the file store's Load.
//
// When the database cannot be reached, Load returns the last snapshot it
// read (or that a write returned), logging the outage once, and retries
// the database with backoff (100 ms doubling to 5 s) meanwhile; routing
// goes on, while writes fail. Without any earlier snapshot the error is
// returned.
func (s *Store) Load(ctx context.Context) (*core.Snapshot, error) {
	if snap, ok := s.stale.serve(time.Now()); ok {
		return snap, nil
	}
	snap, err := s.load(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		if snap, ok := s.stale.failed(err, time.Now(), s.log); ok {
			return snap, nil
		}
		return nil, err
	}
	s.stale.succeeded(snap, s.log)
	return snap, nil
}

func (s *Store) load(ctx context.Context) (*core.Snapshot, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, s.connErr("read", err)
	}
	defer tx.Rollback(ctx)
	cur, err := s.read(ctx, tx)
	if err != nil {
		return nil, err
	}
	return core.SnapshotOf(cur.cfg, cur.st)
}

// Read returns the configuration and state as stored (nil when absent),
// for export.
func (s *Store) Read(ctx context.Context) (*record.ConfigFile, *record.StateFile, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, s.connErr("read", err)
	}
	defer tx.Rollback(ctx)
	cur, err := s.read(ctx, tx)
	if err != nil {
		return nil, nil, err
	}
	return cur.cfg, cur.st, nil
}

// UpdateState locks the state, re-reads it, lets fn change it and writes
// what changed, in one transaction; see core's Store.UpdateState for fn's
// contract. Writers on every machine are serialized by the lock, so fn
// always sees the latest committed state.
func (s *Store) UpdateState(ctx context.Context, fn func(st *record.StateFile) error) (*core.Snapshot, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.connErr("write", err)
	}
	defer tx.Rollback(ctx)
	snap, err := s.updateStateTx(ctx, tx, fn)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.connErr("commit", err)
	}
	s.gen.Add(1)
	s.stale.succeeded(snap, s.log)
	return snap, nil
}

func (s *Store) updateStateTx(ctx context.Context, tx pgx.Tx, fn func(st *record.StateFile) error) (*core.Snapshot, error) {
	if _, err := tx.Exec(ctx, "SELECT name FROM acctpool_write_lock WHERE name = 'state' FOR UPDATE"); err != nil {
		return nil, s.connErr("lock the state", err)
	}
	cur, err := s.read(ctx, tx)
	if err != nil {
		return nil, err
	}
	st, snap, err := core.EditState(cur.cfg, cur.st, fn)
	if err != nil {
		return nil, err
	}
	changed, err := s.writeState(ctx, tx, cur, st)
	if err != nil {
		return nil, err
	}
	if changed != nil {
		if err := s.logChange(ctx, tx, ChangeState, changed); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// UpdateConfig locks the configuration and then the state, re-reads both,
// lets fn change them and writes what changed, in one transaction; see
// core's Store.UpdateConfig.
func (s *Store) UpdateConfig(ctx context.Context, fn func(cfg *record.ConfigFile, st *record.StateFile) error) (*core.Snapshot, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.connErr("write", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT name FROM acctpool_write_lock WHERE name IN ('config', 'state') ORDER BY name FOR UPDATE"); err != nil {
		return nil, s.connErr("lock the configuration", err)
	}
	cur, err := s.read(ctx, tx)
	if err != nil {
		return nil, err
	}
	cfg, st, snap, err := core.EditConfig(cur.cfg, cur.st, fn)
	if err != nil {
		return nil, err
	}
	cfgChanged, err := s.writeConfig(ctx, tx, cur, cfg)
	if err != nil {
		return nil, err
	}
	stChanged, err := s.writeState(ctx, tx, cur, st)
	if err != nil {
		return nil, err
	}
	if cfgChanged || stChanged != nil {
		if err := s.logChange(ctx, tx, ChangeConfig, stChanged); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, s.connErr("commit", err)
	}
	s.gen.Add(1)
	s.stale.succeeded(snap, s.log)
	return snap, nil
}

// stored is what a read found, with the encodings that a write compares
// against to write only what changed.
type stored struct {
	cfg *record.ConfigFile
	st  *record.StateFile

	cfgDoc      []byte   // config without accounts and mainAccountId
	accountDocs [][]byte // the accounts array entries, in order
	mainID      string
	stateDoc    []byte            // state without accounts and main
	accountEnc  map[string][]byte // full state entries, tokens included
	mainDoc     []byte            // this host's state main section
	hasHostRow  bool
}

func (s *Store) read(ctx context.Context, q querier) (*stored, error) {
	cur := &stored{accountEnc: map[string][]byte{}}
	var cfgDoc []byte
	err := q.QueryRow(ctx, "SELECT doc FROM acctpool_config").Scan(&cfgDoc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, s.connErr("read the configuration", err)
	default:
		cfg := &record.ConfigFile{}
		if err := json.Unmarshal(cfgDoc, cfg); err != nil {
			return nil, corruptRow("acctpool_config", err)
		}
		cur.cfg = cfg
	}
	var mainDoc []byte
	err = q.QueryRow(ctx, "SELECT main_account_id, main FROM acctpool_host WHERE host = $1", s.host).Scan(&cur.mainID, &mainDoc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, s.connErr("read the host row", err)
	default:
		cur.hasHostRow = true
	}
	if cur.cfg != nil {
		rows, err := q.Query(ctx, "SELECT doc FROM acctpool_account ORDER BY position")
		if err != nil {
			return nil, s.connErr("read the accounts", err)
		}
		docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return nil, s.connErr("read the accounts", err)
		}
		cur.cfg.Accounts = make([]record.AccountConfig, len(docs))
		for i, d := range docs {
			if err := json.Unmarshal(d, &cur.cfg.Accounts[i]); err != nil {
				return nil, corruptRow("acctpool_account", err)
			}
		}
		cur.cfg.MainAccountID = cur.mainID
		if cur.cfgDoc, cur.accountDocs, err = encodeConfig(cur.cfg); err != nil {
			return nil, err
		}
	}
	var stateDoc []byte
	err = q.QueryRow(ctx, "SELECT doc FROM acctpool_state").Scan(&stateDoc)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return cur, nil
	case err != nil:
		return nil, s.connErr("read the state", err)
	}
	st := &record.StateFile{}
	if err := json.Unmarshal(stateDoc, st); err != nil {
		return nil, corruptRow("acctpool_state", err)
	}
	st.Accounts = map[string]*record.AccountState{}
	if len(mainDoc) > 0 {
		st.Main = &record.MainState{}
		if err := json.Unmarshal(mainDoc, st.Main); err != nil {
			return nil, corruptRow("acctpool_host", err)
		}
	}
	rows, err := q.Query(ctx, "SELECT account_id, doc, access, refresh, api_key FROM acctpool_account_state")
	if err != nil {
		return nil, s.connErr("read the account state", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var doc, access, refresh, apiKey []byte
		if err := rows.Scan(&id, &doc, &access, &refresh, &apiKey); err != nil {
			return nil, s.connErr("read the account state", err)
		}
		a := &record.AccountState{}
		if err := json.Unmarshal(doc, a); err != nil {
			return nil, corruptRow("acctpool_account_state", err)
		}
		for _, f := range []struct {
			name   string
			sealed []byte
			dst    *secret.Secret
		}{{"access", access, &a.Access}, {"refresh", refresh, &a.Refresh}, {"apiKey", apiKey, &a.APIKey}} {
			if f.sealed == nil {
				continue
			}
			plain, err := s.keys.open(f.sealed, aad(id, f.name))
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", id, err)
			}
			*f.dst = secret.Secret(plain)
		}
		st.Accounts[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, s.connErr("read the account state", err)
	}
	cur.st = st
	if cur.stateDoc, cur.mainDoc, err = encodeStateTop(st); err != nil {
		return nil, err
	}
	for id, a := range st.Accounts {
		if cur.accountEnc[id], err = json.Marshal(a); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

func aad(id, field string) []byte { return []byte("acctpool/v1\x00" + id + "\x00" + field) }

func corruptRow(table string, err error) error {
	return fmt.Errorf("%w: the postgres store's %s holds a row that is not the expected JSON (%s); fix or remove the row", core.ErrCorruptFile, table, err.Error())
}

// encodeConfig splits a config into its top-level document and its
// account entries.
func encodeConfig(cfg *record.ConfigFile) ([]byte, [][]byte, error) {
	top := *cfg
	top.Accounts = nil
	top.MainAccountID = ""
	doc, err := json.Marshal(top)
	if err != nil {
		return nil, nil, err
	}
	doc, err = withoutKeys(doc, "accounts")
	if err != nil {
		return nil, nil, err
	}
	accounts := make([][]byte, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		if accounts[i], err = json.Marshal(a); err != nil {
			return nil, nil, err
		}
	}
	return doc, accounts, nil
}

// encodeStateTop encodes the state without its accounts, and its main
// section (nil when absent).
func encodeStateTop(st *record.StateFile) (doc, main []byte, err error) {
	top := *st
	top.Accounts = nil
	top.Main = nil
	if doc, err = json.Marshal(top); err != nil {
		return nil, nil, err
	}
	if doc, err = withoutKeys(doc, "accounts"); err != nil {
		return nil, nil, err
	}
	if st.Main != nil {
		if main, err = json.Marshal(st.Main); err != nil {
			return nil, nil, err
		}
	}
	return doc, main, nil
}

func withoutKeys(doc []byte, keys ...string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return nil, err
	}
	for _, k := range keys {
		delete(m, k)
	}
	return json.Marshal(m)
}

// writeConfig writes the configuration where it differs from cur.
func (s *Store) writeConfig(ctx context.Context, tx pgx.Tx, cur *stored, cfg *record.ConfigFile) (bool, error) {
	doc, accounts, err := encodeConfig(cfg)
	if err != nil {
		return false, fmt.Errorf("encode the configuration: %w", err)
	}
	changed := false
	if cur.cfg == nil || !bytes.Equal(doc, cur.cfgDoc) {
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_config (doc) VALUES ($1)
			ON CONFLICT (singleton) DO UPDATE SET doc = EXCLUDED.doc`, doc); err != nil {
			return false, s.connErr("write the configuration", err)
		}
		changed = true
	}
	if cur.cfg == nil || !equalDocs(accounts, cur.accountDocs) {
		if _, err := tx.Exec(ctx, "DELETE FROM acctpool_account"); err != nil {
			return false, s.connErr("write the accounts", err)
		}
		for i, a := range accounts {
			if _, err := tx.Exec(ctx, "INSERT INTO acctpool_account (position, id, doc) VALUES ($1, $2, $3)", i, cfg.Accounts[i].ID, a); err != nil {
				return false, s.connErr("write the accounts", err)
			}
		}
		changed = true
	}
	if !cur.hasHostRow || cfg.MainAccountID != cur.mainID {
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_host (host, main_account_id) VALUES ($1, $2)
			ON CONFLICT (host) DO UPDATE SET main_account_id = EXCLUDED.main_account_id`, s.host, cfg.MainAccountID); err != nil {
			return false, s.connErr("write the host row", err)
		}
		cur.hasHostRow = true
		changed = true
	}
	return changed, nil
}

func equalDocs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// writeState writes the state where it differs from cur and returns the
// ids of the accounts whose entries changed (nil: nothing was written).
func (s *Store) writeState(ctx context.Context, tx pgx.Tx, cur *stored, st *record.StateFile) ([]string, error) {
	doc, mainDoc, err := encodeStateTop(st)
	if err != nil {
		return nil, fmt.Errorf("encode the state: %w", err)
	}
	wrote := false
	changed := []string{}
	if cur.st == nil || !bytes.Equal(doc, cur.stateDoc) {
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_state (doc) VALUES ($1)
			ON CONFLICT (singleton) DO UPDATE SET doc = EXCLUDED.doc`, doc); err != nil {
			return nil, s.connErr("write the state", err)
		}
		wrote = true
	}
	if !bytes.Equal(mainDoc, cur.mainDoc) {
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_host (host, main) VALUES ($1, $2)
			ON CONFLICT (host) DO UPDATE SET main = EXCLUDED.main`, s.host, mainDoc); err != nil {
			return nil, s.connErr("write the host row", err)
		}
		wrote = true
	}
	ids := make([]string, 0, len(st.Accounts))
	for id := range st.Accounts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		a := st.Accounts[id]
		if a == nil {
			continue
		}
		enc, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode the state of %s: %w", id, err)
		}
		if old, ok := cur.accountEnc[id]; ok && bytes.Equal(old, enc) {
			continue
		}
		if err := s.putAccountState(ctx, tx, id, a); err != nil {
			return nil, err
		}
		changed = append(changed, id)
	}
	for id := range cur.accountEnc {
		if a, ok := st.Accounts[id]; ok && a != nil {
			continue
		}
		if _, err := tx.Exec(ctx, "DELETE FROM acctpool_account_state WHERE account_id = $1", id); err != nil {
			return nil, s.connErr("write the account state", err)
		}
		changed = append(changed, id)
	}
	if !wrote && len(changed) == 0 {
		return nil, nil
	}
	sort.Strings(changed)
	return changed, nil
}

// putAccountState writes one state entry, its tokens sealed.
func (s *Store) putAccountState(ctx context.Context, tx pgx.Tx, id string, a *record.AccountState) error {
	bare := *a
	bare.Access, bare.Refresh, bare.APIKey = "", "", ""
	doc, err := json.Marshal(bare)
	if err != nil {
		return fmt.Errorf("encode the state of %s: %w", id, err)
	}
	seal := func(field string, v secret.Secret) []byte {
		if v == "" {
			return nil
		}
		return s.keys.seal([]byte(v.Reveal()), aad(id, field))
	}
	_, err = tx.Exec(ctx, `INSERT INTO acctpool_account_state (account_id, doc, access, refresh, api_key, updated_at)
		VALUES ($1, $2, $3, $4, $5, now())
		ON CONFLICT (account_id) DO UPDATE SET doc = EXCLUDED.doc, access = EXCLUDED.access,
			refresh = EXCLUDED.refresh, api_key = EXCLUDED.api_key, updated_at = now()`,
		id, doc, seal("access", a.Access), seal("refresh", a.Refresh), seal("apiKey", a.APIKey))
	if err != nil {
		return s.connErr("write the account state", err)
	}
	return nil
}

// Rekey re-encrypts, with the current key, every token sealed with an
// older one, and returns how many accounts it rewrote. Open runs it.
func (s *Store) Rekey(ctx context.Context) (int, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, s.connErr("re-encrypt", err)
	}
	defer tx.Rollback(ctx)
	rows, err := tx.Query(ctx, "SELECT account_id, access, refresh, api_key FROM acctpool_account_state")
	if err != nil {
		return 0, s.connErr("re-encrypt", err)
	}
	type stale struct {
		id     string
		sealed [3][]byte
	}
	var todo []stale
	for rows.Next() {
		var r stale
		if err := rows.Scan(&r.id, &r.sealed[0], &r.sealed[1], &r.sealed[2]); err != nil {
			return 0, s.connErr("re-encrypt", err)
		}
		for _, v := range r.sealed {
			if v != nil && !s.keys.current(v) {
				todo = append(todo, r)
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, s.connErr("re-encrypt", err)
	}
	if len(todo) == 0 {
		return 0, nil
	}
	for _, r := range todo {
		var out [3][]byte
		for i, field := range []string{"access", "refresh", "apiKey"} {
			if r.sealed[i] == nil {
				continue
			}
			plain, err := s.keys.open(r.sealed[i], aad(r.id, field))
			if err != nil {
				return 0, fmt.Errorf("re-encrypt account %s: %w", r.id, err)
			}
			out[i] = s.keys.seal(plain, aad(r.id, field))
		}
		if _, err := tx.Exec(ctx, "UPDATE acctpool_account_state SET access = $2, refresh = $3, api_key = $4 WHERE account_id = $1",
			r.id, out[0], out[1], out[2]); err != nil {
			return 0, s.connErr("re-encrypt", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, s.connErr("re-encrypt", err)
	}
	return len(todo), nil
}

// isConnectionError reports whether err is the database being away (no
// connection, connection lost, server shutting down) rather than a
// refusal or a bad row.
func isConnectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, core.ErrCorruptFile) || errors.Is(err, errUndecryptable) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	return true
}

// connErr wraps a database error with what was being done; pgx errors
// never carry the password, and the connection string is not repeated.
func (s *Store) connErr(doing string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("postgres store: %s: %w", doing, err)
}
