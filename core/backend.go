package core

import (
	"context"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
)

// Backend is a store that keeps the files' content somewhere other than
// the upstream files: the PostgreSQL store (package store/postgres) shared
// by several machines. A [Store] given one in [StoreOptions] sends every
// read and write of the accounts, settings, state and sticky routing to
// it; what stays local is the host's own main-account refresh lock and the
// in-memory rotated pairs whose save failed, which the Store writes along
// with the next write that succeeds.
//
// Load, UpdateState and UpdateConfig behave as the Store's own (a backend
// uses [SnapshotOf], [EditState] and [EditConfig] for that).
type Backend interface {
	Load(ctx context.Context) (*Snapshot, error)
	UpdateState(ctx context.Context, fn func(st *StateFile) error) (*Snapshot, error)
	UpdateConfig(ctx context.Context, fn func(cfg *ConfigFile, st *StateFile) error) (*Snapshot, error)
	// LockAccount takes account id's refresh lock for every machine,
	// waiting up to wait; the lock dies with its holder. A wait that runs
	// out returns an error matching ErrLockTimeout.
	LockAccount(ctx context.Context, id string, wait time.Duration) (AccountLock, error)
	// LoadRouting returns the sticky routing state in the upstream
	// file's JSON shape, nil when none exists.
	LoadRouting(ctx context.Context) ([]byte, error)
	// UpdateRouting locks the routing state, passes it to fn (nil when
	// none exists) and writes what fn returns (nil: no change).
	UpdateRouting(ctx context.Context, now time.Time, fn func(doc []byte) ([]byte, error)) error
	// Generation changes whenever the stored data may have changed, on
	// any machine; caches keyed on it stay correct.
	Generation() uint64
	// Subscribe calls fn with the accounts whose entries another machine
	// changed, as those changes commit; config is true for changes of
	// accounts or settings. The returned function ends the subscription.
	Subscribe(fn func(accounts []string, config bool)) (cancel func())
	// String names the backend for logs, without secrets.
	String() string
}

// AccountLock is a held per-account refresh lock of a [Backend].
type AccountLock interface {
	// UpdateState writes under the lock and releases it in the same
	// commit; the lock is released whatever the outcome.
	UpdateState(ctx context.Context, fn func(st *StateFile) error) (*Snapshot, error)
	// Release releases the lock without writing; safe to repeat.
	Release()
}

// backendLoad is Load through the backend, with pending pairs overlaid.
func (s *Store) backendLoad(ctx context.Context) (*Snapshot, error) {
	snap, err := s.backend.Load(ctx)
	if err != nil || !s.hasPending() {
		return snap, err
	}
	st := snap.State
	if st == nil {
		st = &StateFile{}
	}
	normalizeState(st)
	s.overlayPending(st)
	return SnapshotOf(snap.Config, st)
}

// backendWrite runs a backend state write with the pending pairs written
// along, and settles those the write saved.
func (s *Store) backendWrite(ctx context.Context, write func(context.Context, func(*StateFile) error) (*Snapshot, error), fn func(st *StateFile) error) (*Snapshot, error) {
	defer s.gen.Add(1)
	var applied map[string]*pendingPair
	snap, err := write(ctx, func(st *StateFile) error {
		applied = s.overlayPending(st)
		return fn(st)
	})
	if err != nil {
		return nil, err
	}
	st := snap.State
	if st == nil {
		st = &StateFile{}
	}
	normalizeState(st)
	s.settlePending(applied, st)
	return snap, nil
}

// backendUpdateConfig is UpdateConfig through the backend.
func (s *Store) backendUpdateConfig(ctx context.Context, fn func(cfg *ConfigFile, st *StateFile) error) (*Snapshot, error) {
	defer s.gen.Add(1)
	var applied map[string]*pendingPair
	snap, err := s.backend.UpdateConfig(ctx, func(cfg *ConfigFile, st *StateFile) error {
		applied = s.overlayPending(st)
		return fn(cfg, st)
	})
	if err != nil {
		return nil, err
	}
	st := snap.State
	if st == nil {
		st = &StateFile{}
	}
	normalizeState(st)
	s.settlePending(applied, st)
	return snap, nil
}

// refreshLock is a held fallback refresh lock: a lock file, or a
// backend's database lock.
type refreshLock struct {
	release func()
	held    AccountLock // nil for a lock file
}

// acquireRefresh takes account id's fallback refresh lock.
func (s *Store) acquireRefresh(ctx context.Context, id string) (*refreshLock, error) {
	if s.backend == nil {
		release, err := s.acquire(ctx, fallbackRefreshLock(id), fallbackRefreshLockTTL, fallbackRefreshLockWait)
		if err != nil {
			return nil, err
		}
		return &refreshLock{release: release}, nil
	}
	l, err := s.backend.LockAccount(ctx, id, fallbackRefreshLockWait)
	if err != nil {
		return nil, err
	}
	return &refreshLock{release: l.Release, held: l}, nil
}

// saveRotation saves a rotated pair under the refresh lock: through the
// reservation for the files, in the lock's own commit for a backend.
func (s *Store) saveRotation(ctx context.Context, l *refreshLock, res *stateReservation, fn func(st *StateFile) error) (*Snapshot, error) {
	if l.held == nil {
		return s.updateState(ctx, res, fn)
	}
	return s.backendWrite(ctx, l.held.UpdateState, fn)
}

// String names the store for logs: the backend, or the files.
func (s *Store) String() string {
	if s.backend != nil {
		return s.backend.String()
	}
	return "files " + s.paths.Config + ", " + s.paths.State
}

// Shared reports whether the store is a backend shared by several
// machines rather than this machine's files.
func (s *Store) Shared() bool { return s.backend != nil }

// backendSticky reads the routing state from the backend, from memory
// while the backend's generation is unchanged.
func (e *Engine) backendSticky(ctx context.Context) (*stickyFile, error) {
	c := &e.router().sticky
	gen := e.store.backend.Generation()
	c.mu.Lock()
	if c.file != nil && c.gen == gen {
		f := c.file
		c.mu.Unlock()
		return f, nil
	}
	c.mu.Unlock()
	doc, err := e.store.backend.LoadRouting(ctx)
	if err != nil {
		return nil, err
	}
	f, err := parseStickyDoc(doc)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.file, c.gen = f, gen
	c.mu.Unlock()
	return f, nil
}

// backendUpdateSticky is updateSticky through the backend.
func (e *Engine) backendUpdateSticky(ctx context.Context, fn func(f *stickyFile, now time.Time) (bool, error)) error {
	now := e.now()
	var written *stickyFile
	err := e.store.backend.UpdateRouting(ctx, now, func(doc []byte) ([]byte, error) {
		f, err := parseStickyDoc(doc)
		if err != nil {
			return nil, err
		}
		changed := f.prune(now)
		fnChanged, err := fn(f, now)
		if err != nil || (!changed && !fnChanged) {
			return nil, err
		}
		f.prune(now)
		f.UpdatedAt = epochMs(now)
		written = f
		return json.Marshal(f)
	})
	if err != nil {
		return fmt.Errorf("write routing state: %w", err)
	}
	if written != nil {
		c := &e.router().sticky
		c.mu.Lock()
		c.file, c.gen = written, e.store.backend.Generation()
		c.mu.Unlock()
	}
	return nil
}

// parseStickyDoc reads a routing state document (nil: none yet).
func parseStickyDoc(doc []byte) (*stickyFile, error) {
	f := &stickyFile{Version: 1}
	if doc != nil {
		if err := json.Unmarshal(doc, f); err != nil || f.Version != 1 {
			return nil, fmt.Errorf("%w: invalid sticky routing state in the store", ErrCorruptFile)
		}
	}
	if f.Assignments == nil {
		f.Assignments = map[string]*stickyAssignment{}
	}
	f.reindex()
	return f, nil
}

// followBackend turns other machines' committed changes into the
// engine's events, so the host hears of them as of local ones.
func (e *Engine) followBackend() {
	if e.store.backend == nil {
		return
	}
	e.store.backend.Subscribe(func(accounts []string, config bool) {
		e.forgetSnapshot()
		e.emit(Event{Kind: EventAccountsChanged, Accounts: accounts})
		if !config {
			e.emit(Event{Kind: EventQuotaChanged, Accounts: accounts})
		}
	})
}

// backendRouteSnapshot is routeSnapshot for a backend: the snapshot is
// read again only when the backend's generation moved.
func (e *Engine) backendRouteSnapshot(ctx context.Context) (*Snapshot, error) {
	r := e.router()
	gen := e.store.generation()
	r.snapMu.Lock()
	if r.snap != nil && r.gen == gen {
		snap := r.snap
		r.snapMu.Unlock()
		return snap, nil
	}
	r.snapMu.Unlock()
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	r.snapMu.Lock()
	r.snap, r.gen = snap, gen
	r.snapMu.Unlock()
	e.logWarnings(snap)
	return snap, nil
}

// PollClaimer is a [Backend] that coordinates background usage polls
// across the machines sharing it, so that N machines do not poll an
// account N times per interval.
type PollClaimer interface {
	// ClaimPoll reports whether this machine may poll account id now,
	// claiming it until now + interval.
	ClaimPoll(ctx context.Context, id string, now time.Time, interval time.Duration) (bool, error)
}

// claimPoll reports whether the background pass polls account id: always
// on the files; on a shared backend, when this machine holds the claim.
// A claim that cannot be asked (the database away) does not stop the poll.
func (e *Engine) claimPoll(ctx context.Context, id string, interval time.Duration, now time.Time) bool {
	pc, ok := e.store.backend.(PollClaimer)
	if !ok {
		return true
	}
	claimed, err := pc.ClaimPoll(ctx, id, now, interval)
	if err != nil {
		e.log.Debug("usage poll claim failed; polling anyway", "account", id, "err", err)
		return true
	}
	return claimed
}
