package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema versions in order: migrations[i] turns version
// i into version i+1. A released migration is never edited; a change is a
// new entry.
var migrations = []string{
	// Version 1.
	`
CREATE TABLE acctpool_schema (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	version   integer NOT NULL
);

-- Rows whose FOR UPDATE lock serializes writers, as the lock files do for
-- the file store: 'config' (accounts, settings) before 'state' (runtime
-- state), and 'routing' (sticky assignments) alone.
CREATE TABLE acctpool_write_lock (name text PRIMARY KEY);
INSERT INTO acctpool_write_lock VALUES ('config'), ('state'), ('routing');

-- The config file without its accounts array and mainAccountId: version,
-- main section, settings (routing, quota, killswitch, ...) and unknown keys.
-- No row: there is no configuration yet.
CREATE TABLE acctpool_config (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	doc       jsonb NOT NULL
);

-- The accounts array, in order. doc is the entry as in the file.
CREATE TABLE acctpool_account (
	id       text PRIMARY KEY,
	position integer NOT NULL,
	doc      jsonb NOT NULL
);

-- The state file without its accounts and main section (version, unknown
-- keys). No row: there is no state yet.
CREATE TABLE acctpool_state (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	doc       jsonb NOT NULL
);

-- Per-account runtime state. doc is the state entry without its tokens;
-- the tokens are sealed with AES-256-GCM (see keys.go), NULL when absent.
CREATE TABLE acctpool_account_state (
	account_id text PRIMARY KEY,
	doc        jsonb NOT NULL,
	access     bytea,
	refresh    bytea,
	api_key    bytea,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- What each host keeps of its own: its main account (mainAccountId) and
-- the state's main section. The main account is each host's, never shared.
CREATE TABLE acctpool_host (
	host            text PRIMARY KEY,
	main_account_id text NOT NULL DEFAULT '',
	main            jsonb
);

-- Sticky routing assignments, keyed by the SHA-256 hex of the session id
-- (never the id). last_seen_at (epoch ms) drives the TTL and the cap.
CREATE TABLE acctpool_routing (
	session_hash text PRIMARY KEY,
	account_id   text NOT NULL,
	last_seen_at bigint NOT NULL,
	doc          jsonb NOT NULL
);
CREATE INDEX acctpool_routing_last_seen ON acctpool_routing (last_seen_at);

-- The routing file's top-level keys other than assignments.
CREATE TABLE acctpool_routing_meta (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	doc       jsonb NOT NULL
);

-- Usage polls coordinated across the pool: a machine polls an account only
-- after claiming it until claimed_until (epoch ms on the engines' clocks).
CREATE TABLE acctpool_poll_claim (
	account_id    text PRIMARY KEY,
	claimed_until bigint NOT NULL,
	claimed_by    text NOT NULL
);

-- One row per committed write; its id is the payload of the NOTIFY that
-- the commit sends on channel acctpool_changes.
CREATE TABLE acctpool_change (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	origin      text NOT NULL,
	kind        text NOT NULL,
	account_ids text[] NOT NULL DEFAULT '{}'
);
`,
}

// SchemaVersion is the schema version this binary creates and knows.
var SchemaVersion = len(migrations)

// ErrSchemaTooNew means the database was migrated by a newer acctpool.
var ErrSchemaTooNew = errors.New("database schema is newer than this acctpool knows")

// schemaLockKey is the advisory lock that serializes migrations of
// servers starting at the same time.
const schemaLockKey int64 = 0x61637470_00000001

// migrate brings the schema to SchemaVersion in one transaction, or
// refuses a newer one.
func migrate(ctx context.Context, conn interface {
	Begin(context.Context) (pgx.Tx, error)
}) (from int, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLockKey); err != nil {
		return 0, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass('acctpool_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, err
	}
	if exists {
		if err := tx.QueryRow(ctx, "SELECT version FROM acctpool_schema").Scan(&from); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, err
		}
	}
	if from > SchemaVersion {
		return from, fmt.Errorf("%w: the database has schema version %d, this binary knows up to %d; upgrade acctpool on this machine (nothing was changed)", ErrSchemaTooNew, from, SchemaVersion)
	}
	if from == SchemaVersion {
		return from, nil
	}
	for v := from; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return from, fmt.Errorf("migrate the store schema from version %d to %d: %w", v, v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO acctpool_schema (version) VALUES ($1)
		ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version`, SchemaVersion); err != nil {
		return from, err
	}
	return from, tx.Commit(ctx)
}
