package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5"

	"github.com/acctpool/acctpool/core"
)

// routingDoc is the routing state file's shape as far as the store needs
// it: the assignments by session hash, and everything else.
type routingDoc struct {
	Assignments map[string]json.RawMessage
	Top         map[string]json.RawMessage
}

// assignmentKeys are the fields of an assignment the table indexes.
type assignmentKeys struct {
	AccountID  string `json:"accountId"`
	LastSeenAt int64  `json:"lastSeenAt"`
}

// LoadRouting returns the sticky routing state in the upstream file's
// shape ({"version":1,"updatedAt":…,"assignments":{…}}), or nil when none
// was ever written.
func (s *Store) LoadRouting(ctx context.Context) ([]byte, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, s.connErr("read the routing state", err)
	}
	defer tx.Rollback(ctx)
	d, err := s.readRouting(ctx, tx)
	if err != nil || d == nil {
		return nil, err
	}
	return encodeRouting(d)
}

// UpdateRouting locks the routing state, re-reads it, and passes it to fn
// in the file's shape (nil when none was written yet); fn returns the new
// document, or nil for no change. Assignments are written where they
// changed; afterwards those idle for core.StickyAssignmentTTL (judged on
// now) and, beyond core.StickyAssignmentCap, the least recently seen are
// deleted.
func (s *Store) UpdateRouting(ctx context.Context, now time.Time, fn func(doc []byte) ([]byte, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.connErr("write the routing state", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT name FROM acctpool_write_lock WHERE name = 'routing' FOR UPDATE"); err != nil {
		return s.connErr("lock the routing state", err)
	}
	old, err := s.readRouting(ctx, tx)
	if err != nil {
		return err
	}
	var in []byte
	if old != nil {
		if in, err = encodeRouting(old); err != nil {
			return err
		}
	}
	out, err := fn(in)
	if err != nil || out == nil {
		return err
	}
	nd, err := decodeRouting(out)
	if err != nil {
		return fmt.Errorf("routing state to write is not the expected JSON: %w", err)
	}
	if old == nil {
		old = &routingDoc{Assignments: map[string]json.RawMessage{}, Top: map[string]json.RawMessage{}}
	}
	top, _ := json.Marshal(nd.Top)
	oldTop, _ := json.Marshal(old.Top)
	changed := false
	if !bytes.Equal(top, oldTop) || len(old.Top) == 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_routing_meta (doc) VALUES ($1)
			ON CONFLICT (singleton) DO UPDATE SET doc = EXCLUDED.doc`, top); err != nil {
			return s.connErr("write the routing state", err)
		}
		changed = true
	}
	for k, v := range nd.Assignments {
		if o, ok := old.Assignments[k]; ok && bytes.Equal(o, v) {
			continue
		}
		var keys assignmentKeys
		if err := json.Unmarshal(v, &keys); err != nil {
			return fmt.Errorf("routing assignment to write is not the expected JSON: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO acctpool_routing (session_hash, account_id, last_seen_at, doc) VALUES ($1, $2, $3, $4)
			ON CONFLICT (session_hash) DO UPDATE SET account_id = EXCLUDED.account_id, last_seen_at = EXCLUDED.last_seen_at, doc = EXCLUDED.doc`,
			k, keys.AccountID, keys.LastSeenAt, []byte(v)); err != nil {
			return s.connErr("write a routing assignment", err)
		}
		changed = true
	}
	for k := range old.Assignments {
		if _, ok := nd.Assignments[k]; ok {
			continue
		}
		if _, err := tx.Exec(ctx, "DELETE FROM acctpool_routing WHERE session_hash = $1", k); err != nil {
			return s.connErr("delete a routing assignment", err)
		}
		changed = true
	}
	tag, err := tx.Exec(ctx, "DELETE FROM acctpool_routing WHERE last_seen_at <= $1", now.Add(-core.StickyAssignmentTTL).UnixMilli())
	if err != nil {
		return s.connErr("prune routing assignments", err)
	}
	changed = changed || tag.RowsAffected() > 0
	tag, err = tx.Exec(ctx, `DELETE FROM acctpool_routing WHERE session_hash IN (
		SELECT session_hash FROM acctpool_routing ORDER BY last_seen_at DESC, session_hash DESC OFFSET $1)`, core.StickyAssignmentCap)
	if err != nil {
		return s.connErr("prune routing assignments", err)
	}
	changed = changed || tag.RowsAffected() > 0
	if !changed {
		return nil
	}
	if err := s.logChange(ctx, tx, ChangeRouting, nil); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return s.connErr("commit the routing state", err)
	}
	return nil
}

func (s *Store) readRouting(ctx context.Context, q querier) (*routingDoc, error) {
	var top []byte
	err := q.QueryRow(ctx, "SELECT doc FROM acctpool_routing_meta").Scan(&top)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, s.connErr("read the routing state", err)
	}
	d := &routingDoc{Assignments: map[string]json.RawMessage{}}
	if err := json.Unmarshal(top, &d.Top); err != nil {
		return nil, corruptRow("acctpool_routing_meta", err)
	}
	rows, err := q.Query(ctx, "SELECT session_hash, doc FROM acctpool_routing")
	if err != nil {
		return nil, s.connErr("read the routing state", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var doc []byte
		if err := rows.Scan(&k, &doc); err != nil {
			return nil, s.connErr("read the routing state", err)
		}
		// The canonical encoding, so that a write compares like with like.
		var v any
		if err := json.Unmarshal(doc, &v); err != nil {
			return nil, corruptRow("acctpool_routing", err)
		}
		if d.Assignments[k], err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.connErr("read the routing state", err)
	}
	return d, nil
}

func encodeRouting(d *routingDoc) ([]byte, error) {
	m := make(map[string]json.RawMessage, len(d.Top)+1)
	for k, v := range d.Top {
		m[k] = v
	}
	a, err := json.Marshal(d.Assignments)
	if err != nil {
		return nil, err
	}
	m["assignments"] = a
	return json.Marshal(m)
}

// decodeRouting splits a routing document, canonicalizing each assignment.
func decodeRouting(doc []byte) (*routingDoc, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, err
	}
	d := &routingDoc{Assignments: map[string]json.RawMessage{}, Top: top}
	raw := top["assignments"]
	delete(top, "assignments")
	if len(raw) == 0 {
		return d, nil
	}
	var as map[string]any
	if err := json.Unmarshal(raw, &as); err != nil {
		return nil, err
	}
	for k, v := range as {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		d.Assignments[k] = b
	}
	return d, nil
}
