package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/lockfile"
)

// Lock names and timings of the upstream protocol (BEHAVIOUR.md §1.7).
const (
	LockConfigWrite = "config-write"
	LockStateWrite  = "state-write"
	WriteLockTTL    = 10 * time.Second
	writeLockWait   = 12 * time.Second
	lockPoll        = 25 * time.Millisecond
)

// lockTimeouts are upstream's messages for the two write locks.
var lockTimeouts = map[string]string{
	LockConfigWrite: "Timed out waiting for the account configuration write lock",
	LockStateWrite:  "Timed out waiting for the account state write lock",
}

// LockTimeoutError is a lock wait that ran out. Its message is upstream's
// wording; it matches [ErrLockTimeout]. holder says who held the lock and
// until when, as far as its file tells (" held by pid 12 on host h until
// <time>").
type LockTimeoutError struct{ Msg, Holder string }

// Error is upstream's wording.
func (e *LockTimeoutError) Error() string { return e.Msg }

// Unwrap makes it match [ErrLockTimeout].
func (e *LockTimeoutError) Unwrap() error { return ErrLockTimeout }

// WithLock runs fn while holding the named write lock. fn receives owned,
// which reports an error once the lock has been lost (evicted while we
// stalled); writers call it right before they commit.
func (f *Files) WithLock(ctx context.Context, name string, fn func(owned func() error) error) error {
	l, err := f.lockAt(ctx, f.LockPath(name), WriteLockTTL, writeLockWait, lockPoll)
	if err != nil {
		return err
	}
	err = fn(l.AssertOwned)
	if rerr := l.Release(); rerr != nil && err == nil {
		f.logger().Warn("release lock", "lock", l.Path(), "err", rerr)
	}
	return err
}

// LockPath is the file of the named lock: <config>.<name>.lock.
func (f *Files) LockPath(name string) string { return f.Config + "." + name + ".lock" }

// Acquire takes the named cross-process lock (<config>.<name>.lock) with the
// given time to live, waiting up to wait for it and polling every 25 ms.
// The lock is renewed while held. The returned release function is safe to
// call more than once. The error wraps ErrLockTimeout when the wait runs
// out.
func (f *Files) Acquire(ctx context.Context, name string, ttl, wait time.Duration) (release func(), err error) {
	return f.AcquireAt(ctx, f.LockPath(name), ttl, wait, lockPoll)
}

// AcquireAt is Acquire for an arbitrary lock file path, for locks that do
// not sit beside the config (the sticky routing file's
// "<routing-state>.write.lock").
func (f *Files) AcquireAt(ctx context.Context, lockPath string, ttl, wait, poll time.Duration) (func(), error) {
	l, err := f.lockAt(ctx, lockPath, ttl, wait, poll)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := l.Release(); err != nil {
			f.logger().Warn("release lock", "lock", lockPath, "err", err)
		}
	}, nil
}

func (f *Files) lockAt(ctx context.Context, lockPath string, ttl, wait, poll time.Duration) (*lockfile.Lock, error) {
	// Locks are taken only to write: a first write into a config
	// directory that does not exist yet creates it (mode 0700).
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o700); err != nil {
		return nil, fmt.Errorf("create directory %s: %w", filepath.Dir(lockPath), err)
	}
	l, err := lockfile.Acquire(ctx, lockPath, lockfile.Options{TTL: ttl, Now: f.Wall}, wait, poll)
	if errors.Is(err, lockfile.ErrTimeout) {
		name := strings.TrimSuffix(strings.TrimPrefix(lockPath, f.Config+"."), ".lock")
		msg, ok := lockTimeouts[name]
		if !ok {
			msg = "Timed out waiting for lock " + filepath.Base(lockPath)
		}
		holder := ""
		var te *lockfile.TimeoutError
		if errors.As(err, &te) {
			holder = " held by " + te.Holder.String() + te.UntilText()
		}
		return nil, &LockTimeoutError{Msg: msg, Holder: holder}
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", filepath.Base(lockPath), err)
	}
	return l, nil
}

// LostLockAttempts bounds how often one update re-runs after losing its
// lock before the write.
const LostLockAttempts = 3

// RetryLost runs cycle (take the lock, re-read, apply, write) again when it
// fails because the lock was lost before the write, so that a change is
// re-applied to what the evicting process wrote instead of being dropped.
func (f *Files) RetryLost(path string, cycle func() error) error {
	var err error
	for attempt := 1; attempt <= LostLockAttempts; attempt++ {
		if err = cycle(); !errors.Is(err, lockfile.ErrLost) {
			return err
		}
		f.logger().Warn("write lock lost before the write; re-reading and re-applying", "path", path, "attempt", attempt)
	}
	return fmt.Errorf("write %s: its lock was taken away %d times before the write (another process evicting it); nothing written, try again: %w", path, LostLockAttempts, err)
}
