package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
)

// lockIdleTimeout bounds how long a refresh lock's transaction may sit idle
// (the token call runs while it does): a holder that hangs longer loses the
// lock, its session ended by the server, and its save fails instead of
// landing after a survivor's. It exceeds the engine's token-call budget.
const lockIdleTimeout = 150 * time.Second

// AccountLock is a held per-account refresh lock: a transaction-level
// advisory lock on a connection of its own. It is released when the
// transaction ends — by [AccountLock.UpdateState], which commits the
// rotated tokens and the release together, or by [AccountLock.Release] —
// and also when the holder dies, because its session ends with its
// connection. Exactly one holder per account exists across every machine
// sharing the database.
type AccountLock struct {
	s    *Store
	id   string
	tx   pgx.Tx
	once sync.Once
}

// ErrLockLost means the lock's session ended before the write: the write
// did not happen.
var ErrLockLost = errors.New("the refresh lock's database session ended before the save")

// lockKey is the advisory lock key of account id's refresh lock.
func lockKey(id string) int64 {
	sum := sha256.Sum256([]byte("acctpool fallback refresh\x00" + id))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// LockAccount takes account id's refresh lock, waiting up to wait for a
// holder elsewhere to let go. When the wait runs out the error wraps
// core.ErrLockTimeout and names the holder when the database knows it.
// After it returns, re-read the account ([Store.Load]): another machine
// may have just rotated its tokens.
func (s *Store) LockAccount(ctx context.Context, id string, wait time.Duration) (*AccountLock, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, s.connErr("begin the refresh lock of "+id, err)
	}
	ms := wait.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d; SET LOCAL idle_in_transaction_session_timeout = %d", ms, lockIdleTimeout.Milliseconds())); err != nil {
		tx.Rollback(context.Background())
		return nil, s.connErr("begin the refresh lock of "+id, err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey(id)); err != nil {
		tx.Rollback(context.Background())
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55P03" {
			return nil, &LockTimeoutError{Account: id, Holder: s.lockHolder(context.Background(), id)}
		}
		return nil, s.connErr("take the refresh lock of "+id, err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
		tx.Rollback(context.Background())
		return nil, s.connErr("take the refresh lock of "+id, err)
	}
	return &AccountLock{s: s, id: id, tx: tx}, nil
}

// LockTimeoutError is a refresh lock wait that ran out; it matches
// core.ErrLockTimeout.
type LockTimeoutError struct {
	Account string
	// Holder is the holding session's application name ("acctpool <host>
	// pid <n>"), when known.
	Holder string
}

// Error is upstream's wording for a busy refresh, with the holder when known.
func (e *LockTimeoutError) Error() string {
	msg := "Fallback OAuth refresh is already in progress for " + e.Account
	if e.Holder != "" {
		msg += " (lock held by " + e.Holder + ")"
	}
	return msg
}

// Unwrap makes the error match core.ErrLockTimeout.
func (e *LockTimeoutError) Unwrap() error { return core.ErrLockTimeout }

// lockHolder names the session holding account id's lock, or "".
func (s *Store) lockHolder(ctx context.Context, id string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	k := uint64(lockKey(id))
	var name string
	err := s.pool.QueryRow(ctx, `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		uint32(k>>32), uint32(k)).Scan(&name)
	if err != nil {
		return ""
	}
	return name
}

// Account is the id the lock is for.
func (l *AccountLock) Account() string { return l.id }

// UpdateState is [Store.UpdateState] inside the lock's transaction: the
// write and the release of the lock commit together. The lock is released
// whatever the outcome. An error wrapping [ErrLockLost] means the session
// ended first and nothing was written.
func (l *AccountLock) UpdateState(ctx context.Context, fn func(st *record.StateFile) error) (*core.Snapshot, error) {
	var snap *core.Snapshot
	var err error
	l.once.Do(func() {
		defer l.tx.Rollback(context.Background())
		snap, err = l.s.updateStateTx(ctx, l.tx, fn)
		if err == nil {
			err = l.tx.Commit(ctx)
		}
		if err != nil && l.tx.Conn().IsClosed() {
			err = fmt.Errorf("%w: %w", ErrLockLost, err)
		}
		if err == nil {
			l.s.gen.Add(1)
		}
	})
	if snap == nil && err == nil {
		err = errors.New("the refresh lock of " + l.id + " was already released")
	}
	return snap, err
}

// Release releases the lock without writing; safe to call more than once
// and after UpdateState.
func (l *AccountLock) Release() {
	l.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.tx.Rollback(ctx)
	})
}
