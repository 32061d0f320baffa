package core

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
)

// defaultWriteBehind is how long an observation may stay in memory before
// it is written (BEHAVIOUR.md §1.9).
const defaultWriteBehind = time.Second

// AfterFunc schedules f to run once after d and returns a function that
// cancels it (true when f will not run). time.AfterFunc is one; tests
// inject one they fire by hand, so no test waits for an interval.
type AfterFunc func(d time.Duration, f func()) (stop func() bool)

func systemAfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// observation is one change of the observation class (BEHAVIOUR.md §1.9):
// applied to the in-memory snapshot at once and replayed onto the file as
// it is on disk at the next write. apply must change only the entry of
// account (st.Main for MainAccountID), and only st: it runs again at every
// replay, possibly on another goroutine, so it must not write anything the
// caller reads.
type observation struct {
	account string
	apply   func(st *record.StateFile) error
}

// observeState applies fn, an observation of account id, to the store's
// current snapshot at once and queues it for the next write, which comes
// at most one write-behind interval later (or sooner, with any credential
// write, Flush or Drain). It returns the snapshot with fn applied; like
// every published snapshot it is shared and must not be modified.
//
// With a negative StoreOptions.WriteBehind the change is written at once
// (UpdateState).
//
// For a no-wait caller (TryReport) it returns ErrWouldWait, having applied
// nothing, whenever it would write or read a file: a write-through store,
// or a current snapshot that must be read again first.
func (s *Store) observeState(ctx context.Context, id string, fn func(st *record.StateFile) error) (*Snapshot, error) {
	if s.interval < 0 {
		if mustWait(ctx) {
			return nil, ErrWouldWait
		}
		return s.UpdateState(ctx, fn)
	}
	for range 3 {
		s.obsMu.Lock()
		if base := s.cur; base != nil && s.curGen == s.gen.Load() {
			next, err := observed(base, observation{id, fn})
			if err != nil {
				s.obsMu.Unlock()
				return nil, err
			}
			s.cur = next
			s.queue = append(s.queue, observation{id, fn})
			s.capQueueLocked()
			s.armLocked()
			s.obsMu.Unlock()
			return next, nil
		}
		s.obsMu.Unlock()
		if mustWait(ctx) {
			return nil, ErrWouldWait // the snapshot moved: reading it is I/O
		}
		if _, _, err := s.current(context.WithoutCancel(ctx)); err != nil {
			return nil, err
		}
	}
	// The files keep changing under us (writers in a loop): write through.
	return s.UpdateState(ctx, fn)
}

// observed returns base with observation o applied, copying only what o
// may change: the state's account map and o's entry, and the account list.
func observed(base *Snapshot, o observation) (*Snapshot, error) {
	st := &record.StateFile{Version: 1}
	if base.State != nil {
		*st = *base.State
	}
	st.Accounts = make(map[string]*record.AccountState, len(st.Accounts)+1)
	if base.State != nil {
		for k, v := range base.State.Accounts {
			st.Accounts[k] = v
		}
	}
	if o.account == MainAccountID {
		if st.Main != nil {
			m := *st.Main
			st.Main = &m
		}
	} else if a := st.Accounts[o.account]; a != nil {
		c := *a
		st.Accounts[o.account] = &c
	}
	if err := o.apply(st); err != nil {
		return nil, err
	}
	normalizeState(st)
	snap := *base
	snap.State = st
	if st.Main != nil {
		snap.Main = st.Main
	}
	if o.account != MainAccountID {
		snap.Accounts = slices.Clone(base.Accounts)
		for i := range snap.Accounts {
			a := &snap.Accounts[i]
			if a.ID != o.account {
				continue
			}
			if s := st.Accounts[a.ID]; s != nil {
				a.State = *s
			}
			applyLegacyCredentials(a)
			a.Problem = accountProblem(a)
		}
	}
	return &snap, nil
}

// replay applies the observations obs to st, a state read from disk under
// the state lock. An observation whose account is gone is dropped.
func replay(st *record.StateFile, obs []observation) {
	for _, o := range obs {
		_ = o.apply(st)
	}
	normalizeState(st)
}

// takeQueue hands the queued observations to a writer, which replays them
// and gives them back (requeue) when its write fails.
//
// Until the write ends they stay readable as inflight, so that a read of
// the files meanwhile (Load) still sees them. Writers are serialized by
// s.mu: one write holds inflight at a time.
func (s *Store) takeQueue() []observation {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	q := s.queue
	s.queue = nil
	s.inflight = q
	return q
}

// queued returns a copy of the observations not on disk yet (those a
// write in progress carries, then the queue), for a read.
func (s *Store) queued() []observation {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	if len(s.inflight) == 0 && len(s.queue) == 0 {
		return nil
	}
	return append(slices.Clone(s.inflight), s.queue...)
}

// requeue puts observations a failed write took back in front of the
// queue, so that they go out with the next write.
func (s *Store) requeue(obs []observation) {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.inflight = nil
	if len(obs) == 0 {
		return
	}
	s.queue = append(obs, s.queue...)
	s.capQueueLocked()
	s.armLocked()
}

// maxQueued bounds the observations waiting for a write. Only a flush
// that keeps failing (a corrupt file, a lock held elsewhere) lets the
// queue grow; the oldest then go, as observations may (BEHAVIOUR.md §1.9),
// and this process still sees them in memory until it reads the file
// again.
const maxQueued = 4096

func (s *Store) capQueueLocked() {
	if extra := len(s.queue) - maxQueued; extra > 0 {
		if !s.dropWarned {
			s.dropWarned = true
			s.logger.Warn("observations not written for a while; dropping the oldest", "kept", maxQueued)
		}
		s.queue = append(s.queue[:0:0], s.queue[extra:]...)
	}
}

// armLocked schedules the write-behind flush unless one is scheduled.
func (s *Store) armLocked() {
	if len(s.queue) >= flushEarlyAt && !s.earlyArmed {
		// A burst (thousands of reports a second) would fill the queue
		// before the interval ends: write now instead of dropping.
		s.earlyArmed = true
		s.afterFunc(0, func() {
			s.obsMu.Lock()
			s.earlyArmed = false
			s.obsMu.Unlock()
			s.flushBehind()
		})
	}
	if s.armed || len(s.queue) == 0 {
		return
	}
	s.armed = true
	s.afterFunc(s.interval, s.flushBehind)
}

// flushEarlyAt is the queue length at which the write-behind flush runs at
// once rather than at the end of its interval: a burst of observations is
// written in batches of about this many (one write per 1,024 calls at
// most) instead of outgrowing maxQueued within one interval.
const flushEarlyAt = 1024

// flushBehind is the scheduled write of the queued observations.
func (s *Store) flushBehind() {
	s.obsMu.Lock()
	s.armed = false
	s.obsMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		s.logger.Warn("observations not written yet; will retry", "err", err)
	}
}

// Flush writes the queued observations now, in one write under the state
// lock (re-read, apply, write; BEHAVIOUR.md §1.6). Hosts call it through
// [Engine.Drain] on the way out; nothing needs it for correctness inside
// the process, which already sees every observation.
func (s *Store) Flush(ctx context.Context) error {
	s.obsMu.Lock()
	n := len(s.queue)
	s.obsMu.Unlock()
	if n == 0 {
		return nil
	}
	_, err := s.UpdateState(ctx, func(*record.StateFile) error { return nil })
	return err
}

// current returns the store's current snapshot: the one its last write
// produced (with the observations queued since), confirmed against the
// files' stamps at most every externalRecheck, and read again only when
// another process changed a file or a write of ours produced no snapshot
// (the generation moved). reloaded reports a read from disk. The snapshot
// is shared: callers must not modify it.
func (s *Store) current(ctx context.Context) (snap *Snapshot, reloaded bool, err error) {
	if s.backend != nil {
		return s.backendCurrent(ctx)
	}
	gen, wall := s.gen.Load(), s.wallNow()
	s.obsMu.Lock()
	cur, curGen, cs, ss, checked := s.cur, s.curGen, s.cfgStamp, s.stStamp, s.checked
	s.obsMu.Unlock()
	if cur != nil && curGen == gen && recentlyChecked(checked, wall) {
		return cur, false, nil
	}
	if mustWait(ctx) {
		return nil, false, ErrWouldWait
	}
	cfi, err := filestore.StampOf(s.paths.Config)
	if err != nil {
		return nil, false, err
	}
	sfi, err := filestore.StampOf(s.paths.State)
	if err != nil {
		return nil, false, err
	}
	if cur != nil && curGen == gen && cs.Same(cfi) && ss.Same(sfi) {
		s.obsMu.Lock()
		if s.cur == cur {
			s.checked = wall
		}
		s.obsMu.Unlock()
		return cur, false, nil
	}
	snap, err = s.Load(ctx)
	if err != nil {
		return nil, false, err
	}
	s.obsMu.Lock()
	if s.cur == cur && s.gen.Load() == gen {
		s.cur, s.curGen, s.cfgStamp, s.stStamp, s.checked = snap, gen, cfi, sfi, wall
	}
	s.obsMu.Unlock()
	return snap, true, nil
}

// publish makes snap, what a write of ours just put on disk, the current
// snapshot, with the observations queued since the write took the queue.
// cfi and sfi are the files' stamps taken under the locks; gen is the
// generation the write ended.
func (s *Store) publish(snap *Snapshot, cfi, sfi filestore.Stamp, gen uint64) {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.inflight = nil // on disk now
	for _, o := range s.queue {
		if next, err := observed(snap, o); err == nil {
			snap = next
		}
	}
	if s.gen.Load() != gen {
		return
	}
	s.cur, s.curGen, s.cfgStamp, s.stStamp, s.checked = snap, gen, cfi, sfi, s.wallNow()
}

// Flush writes the observations this engine holds in memory now: the
// state file's (Store.Flush) and the routing state's sticky assignments.
// Drain calls it; the write-behind timer does the same on its own.
func (e *Engine) Flush(ctx context.Context) error {
	serr := e.store.Flush(ctx)
	if err := e.flushSticky(ctx); err != nil && serr == nil {
		serr = err
	}
	if serr != nil {
		return fmt.Errorf("write observations: %w", serr)
	}
	return nil
}
