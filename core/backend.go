package core

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
)

// Backend is a store that keeps the files' content somewhere other than
// the upstream files: the PostgreSQL store (package core/pgstore) shared
// by several machines. A [Store] given one in [StoreOptions] sends every
// read and write of the accounts, settings, state and sticky routing to
// it; what stays local is the host's own main-account refresh lock, the
// journal of each rotation from the token endpoint's answer to its commit
// (in the state file's directory, replayed into the backend by the next
// Store opened there after a crash), and the in-memory rotated pairs whose
// save failed, which the Store writes along with the next write that
// succeeds.
//
// Load, UpdateState and UpdateConfig behave as the Store's own (a backend
// uses [SnapshotOf], [EditState] and [EditConfig] for that).
type Backend interface {
	Load(ctx context.Context) (*Snapshot, error)
	UpdateState(ctx context.Context, fn func(st *record.StateFile) error) (*Snapshot, error)
	UpdateConfig(ctx context.Context, fn func(cfg *record.ConfigFile, st *record.StateFile) error) (*Snapshot, error)
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
	UpdateState(ctx context.Context, fn func(st *record.StateFile) error) (*Snapshot, error)
	// Release releases the lock without writing; safe to repeat.
	Release()
}

// backendLoad is Load through the backend, with pending pairs and the
// observations not written yet applied.
func (s *Store) backendLoad(ctx context.Context) (*Snapshot, error) {
	snap, err := s.backend.Load(ctx)
	obs := s.queued()
	if err != nil || (!s.hasPending() && len(obs) == 0) {
		return snap, err
	}
	st := snap.State
	if st == nil {
		st = &record.StateFile{}
	}
	normalizeState(st)
	s.overlayPending(st)
	replay(st, obs)
	return SnapshotOf(snap.Config, st)
}

// backendCurrent is current for a backend: the published snapshot while
// neither this store's nor the backend's generation moved.
func (s *Store) backendCurrent(ctx context.Context) (*Snapshot, bool, error) {
	gen, bgen := s.gen.Load(), s.backend.Generation()
	s.obsMu.Lock()
	cur, curGen, curB := s.cur, s.curGen, s.curBackend
	s.obsMu.Unlock()
	if cur != nil && curGen == gen && curB == bgen {
		return cur, false, nil
	}
	if mustWait(ctx) {
		return nil, false, ErrWouldWait
	}
	snap, err := s.Load(ctx)
	if err != nil {
		return nil, false, err
	}
	s.obsMu.Lock()
	if s.cur == cur && s.gen.Load() == gen {
		s.cur, s.curGen, s.curBackend = snap, gen, bgen
	}
	s.obsMu.Unlock()
	return snap, true, nil
}

// backendWrite runs a backend state write with the pending pairs and the
// queued observations written along, settles the pairs the write saved,
// and publishes the snapshot it returned.
func (s *Store) backendWrite(ctx context.Context, write func(context.Context, func(*record.StateFile) error) (*Snapshot, error), fn func(st *record.StateFile) error) (*Snapshot, error) {
	return s.backendCycle(ctx, func(ctx context.Context, prepare func(*record.StateFile)) (*Snapshot, error) {
		return write(ctx, func(st *record.StateFile) error {
			prepare(st)
			return fn(st)
		})
	})
}

// backendUpdateConfig is UpdateConfig through the backend.
func (s *Store) backendUpdateConfig(ctx context.Context, fn func(cfg *record.ConfigFile, st *record.StateFile) error) (*Snapshot, error) {
	return s.backendCycle(ctx, func(ctx context.Context, prepare func(*record.StateFile)) (*Snapshot, error) {
		return s.backend.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
			prepare(st)
			return fn(cfg, st)
		})
	})
}

// backendCycle is one write through the backend, serialized with this
// store's other writes: prepare puts the pending pairs and the queued
// observations into the state the backend re-read.
func (s *Store) backendCycle(ctx context.Context, write func(context.Context, func(*record.StateFile)) (*Snapshot, error)) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	obs := s.takeQueue()
	var applied map[string]*pendingPair
	snap, err := write(ctx, func(st *record.StateFile) {
		applied = s.overlayPending(st)
		replay(st, obs)
	})
	gen := s.gen.Add(1)
	if err != nil {
		s.requeue(obs)
		return nil, err
	}
	st := snap.State
	if st == nil {
		st = &record.StateFile{}
	}
	normalizeState(st)
	s.settlePending(applied, st)
	s.publish(snap, filestore.Stamp{}, filestore.Stamp{}, gen)
	s.obsMu.Lock()
	s.curBackend = s.backend.Generation()
	s.obsMu.Unlock()
	return snap, nil
}

// heldLockKey is the context key of the backend refresh lock a rotation
// runs under (see acquireRefresh).
type heldLockKey struct{}

// acquireRefresh takes account a's refresh lock: the lock file name
// says, or, for a fallback on a backend, the backend's lock, which the
// returned context carries to the rotation's save (saveRotation) so that
// the rotated pair commits with the lock's release.
func (e *Engine) acquireRefresh(ctx context.Context, a oauthAccount, name string, ttl, wait time.Duration) (context.Context, func(), error) {
	if e.store.backend == nil || a.fallback == nil {
		release, err := e.store.files.Acquire(ctx, name, ttl, wait)
		return ctx, release, err
	}
	l, err := e.store.backend.LockAccount(ctx, a.id, wait)
	if err != nil {
		return ctx, nil, err
	}
	return context.WithValue(ctx, heldLockKey{}, l), l.Release, nil
}

// saveRotation saves a rotated pair under the refresh lock: through the
// reservation for the files, in the held lock's own commit for a backend.
func (s *Store) saveRotation(ctx context.Context, res *filestore.Reservation, fn func(st *record.StateFile) error) (*Snapshot, error) {
	if l, ok := ctx.Value(heldLockKey{}).(AccountLock); ok && s.backend != nil {
		return s.backendWrite(ctx, l.UpdateState, fn)
	}
	return s.updateState(ctx, res, fn)
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

// RoutingDoc returns the sticky routing state in the upstream file's JSON
// shape, read-only, for commands that show it: the backend's, or the
// routing-state file's content; nil when none exists.
func (s *Store) RoutingDoc(ctx context.Context) ([]byte, error) {
	if s.backend != nil {
		return s.backend.LoadRouting(ctx)
	}
	b, err := os.ReadFile(s.paths.RoutingState)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// backendStickyLoaded is stickyLoaded for a backend: the routing state
// is read again when the backend's generation moved, with this process's
// unwritten changes on top.
func (e *Engine) backendStickyLoaded(ctx context.Context) error {
	c := &e.router().sticky
	gen := e.store.backend.Generation()
	c.mu.Lock()
	if c.file != nil && c.gen == gen {
		c.mu.Unlock()
		return nil
	}
	ver := c.ver
	c.mu.Unlock()
	if mustWait(ctx) {
		return ErrWouldWait
	}
	doc, err := e.store.backend.LoadRouting(ctx)
	if err != nil {
		return err
	}
	f, err := parseStickyDoc(doc)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.ver == ver {
		replaySticky(f, c.ops)
		c.file, c.gen = f, gen
		c.ver++
	}
	c.mu.Unlock()
	return nil
}

// backendWriteSticky is writeSticky for a backend: under the backend's
// routing lock it re-reads the state, prunes it, replays ops and writes
// it; what it wrote becomes the cache, with the changes queued meanwhile
// on top.
func (e *Engine) backendWriteSticky(ctx context.Context, ops []stickyOp) error {
	now := e.now()
	var written *stickyFile
	err := e.store.backend.UpdateRouting(ctx, now, func(doc []byte) ([]byte, error) {
		f, err := parseStickyDoc(doc)
		if err != nil {
			return nil, err
		}
		f.prune(now)
		replaySticky(f, ops)
		f.prune(now)
		f.UpdatedAt = epochMs(now)
		written = f
		return json.Marshal(f)
	})
	if err != nil {
		return fmt.Errorf("write routing state: %w", err)
	}
	c := &e.router().sticky
	c.mu.Lock()
	replaySticky(written, c.ops)
	c.file, c.gen = written, e.store.backend.Generation()
	c.ver++
	c.mu.Unlock()
	return nil
}

// parseStickyDoc reads a routing state document (nil: none yet).
func parseStickyDoc(doc []byte) (*stickyFile, error) {
	f := &stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1}}
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
		e.emit(Event{Kind: EventAccountsChanged, Accounts: accounts})
		if !config {
			e.emit(Event{Kind: EventQuotaChanged, Accounts: accounts})
		}
	})
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
