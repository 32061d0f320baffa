package pgstore

import (
	"context"
	"strconv"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"
)

// Change kinds.
const (
	// ChangeState is a committed state write (tokens, quota, errors).
	ChangeState = "state"
	// ChangeConfig is a committed configuration write (accounts,
	// settings), possibly with state.
	ChangeConfig = "config"
	// ChangeRouting is a committed sticky routing write.
	ChangeRouting = "routing"
	// ChangeReset means changes may have been missed (the watch lost its
	// connection for longer than the change log keeps): reload everything.
	ChangeReset = "reset"
)

// notifyChannel is the LISTEN/NOTIFY channel of committed writes.
const notifyChannel = "acctpool_changes"

// changeLogKeep is how many change rows are kept (for operators, and for
// notifications too long for a payload).
const changeLogKeep = 10000

// Change is one committed write, as [Store.Watch] reports it.
type Change struct {
	ID int64 `json:"id"`
	// Origin is the writing Store's [Store.Origin].
	Origin string `json:"origin"`
	Kind   string `json:"kind"`
	// Accounts are the accounts whose state entries changed (empty for a
	// configuration or routing change that touched none).
	Accounts []string `json:"accounts"`
}

// logChange records a write in the change log and notifies listeners; the
// notification is delivered when tx commits, and not at all if it does
// not.
func (s *Store) logChange(ctx context.Context, tx pgx.Tx, kind string, accounts []string) error {
	if accounts == nil {
		accounts = []string{}
	}
	c := Change{Origin: s.origin, Kind: kind, Accounts: accounts}
	if err := tx.QueryRow(ctx, "INSERT INTO acctpool_change (origin, kind, account_ids) VALUES ($1, $2, $3) RETURNING id",
		c.Origin, c.Kind, c.Accounts).Scan(&c.ID); err != nil {
		return s.connErr("log the change", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return err
	}
	// A payload must stay under 8000 bytes; a long account list is read
	// from the log instead.
	if len(payload) > 7000 {
		payload = []byte(strconv.FormatInt(c.ID, 10))
	}
	if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", notifyChannel, string(payload)); err != nil {
		return s.connErr("notify the change", err)
	}
	if c.ID%100 == 0 {
		if _, err := tx.Exec(ctx, "DELETE FROM acctpool_change WHERE id <= $1", c.ID-changeLogKeep); err != nil {
			return s.connErr("trim the change log", err)
		}
	}
	return nil
}

// Watch reports every write committed after it starts, by any machine
// (this Store's own included; compare Origin), in commit order, until ctx
// ends. It listens on its own connection; when that connection is lost it
// reconnects with backoff (100 ms doubling to 5 s) and then reports one
// [ChangeReset], since writes committed meanwhile were not seen. ready,
// when not nil, is called once the first LISTEN is in place. Watch returns
// ctx's error.
func (s *Store) Watch(ctx context.Context, ready func(), fn func(Change)) error {
	return s.watch(ctx, ready, fn, func(bool) {})
}

// watch is Watch; live is told when listening starts and when it stops.
func (s *Store) watch(ctx context.Context, ready func(), fn func(Change), live func(listening bool)) error {
	backoff := 100 * time.Millisecond
	for first := true; ; first = false {
		err := s.watchOnce(ctx, func() {
			live(true)
			if first {
				if ready != nil {
					ready()
				}
			} else {
				fn(Change{Kind: ChangeReset, Accounts: []string{}})
			}
			backoff = 100 * time.Millisecond
		}, fn)
		live(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("store change watch lost its connection; reconnecting", "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if backoff *= 2; backoff > 5*time.Second {
			backoff = 5 * time.Second
		}
	}
}

// watchOnce listens on one connection until it fails; listening is called
// once the LISTEN is in place.
func (s *Store) watchOnce(ctx context.Context, listening func(), fn func(Change)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var c Change
		if json.Unmarshal([]byte(n.Payload), &c) != nil || c.Kind == "" {
			// A bare id: the change was too long for the payload.
			id, perr := strconv.ParseInt(n.Payload, 10, 64)
			if perr != nil {
				continue
			}
			if err := conn.QueryRow(ctx, "SELECT id, origin, kind, account_ids FROM acctpool_change WHERE id = $1", id).
				Scan(&c.ID, &c.Origin, &c.Kind, &c.Accounts); err != nil {
				c = Change{ID: id, Kind: ChangeReset, Accounts: []string{}}
			}
		}
		fn(c)
	}
}
