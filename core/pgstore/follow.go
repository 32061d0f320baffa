package pgstore

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
)

// follower is the Store's own watch: it counts every change seen (any
// machine's) into the generation, and hands changes to subscribers.
type follower struct {
	seen   atomic.Uint64 // notifications and resets received
	live   atomic.Bool   // the watch is listening
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	subs map[int]func(Change)
	next int
}

func (s *Store) startFollowing() {
	ctx, cancel := context.WithCancel(context.Background())
	s.follow.cancel = cancel
	s.follow.done = make(chan struct{})
	go func() {
		defer close(s.follow.done)
		_ = s.watch(ctx, nil, func(c Change) {
			s.follow.seen.Add(1)
			s.follow.mu.Lock()
			subs := make([]func(Change), 0, len(s.follow.subs))
			for _, fn := range s.follow.subs {
				subs = append(subs, fn)
			}
			s.follow.mu.Unlock()
			for _, fn := range subs {
				fn(c)
			}
		}, func(listening bool) { s.follow.live.Store(listening) })
	}()
}

func (s *Store) stopFollowing() {
	if s.follow.cancel != nil {
		s.follow.cancel()
		<-s.follow.done
	}
}

// Generation changes whenever the stored data may have changed: on this
// Store's writes and on every change notification from any machine. While
// the watch is not listening (started with NoFollow, or its connection
// lost) it changes on every call, so a cache keyed on it re-reads.
func (s *Store) Generation() uint64 {
	if !s.follow.live.Load() {
		return s.gen.Add(1) + s.follow.seen.Load()
	}
	return s.gen.Load() + s.follow.seen.Load()
}

// Subscribe calls fn with every change the Store's watch sees (this
// Store's own writes included; compare [Change.Origin] with
// [Store.Origin]), until the returned function is called. fn runs on the
// watch goroutine and must not block.
func (s *Store) Subscribe(fn func(Change)) (cancel func()) {
	s.follow.mu.Lock()
	defer s.follow.mu.Unlock()
	if s.follow.subs == nil {
		s.follow.subs = map[int]func(Change){}
	}
	id := s.follow.next
	s.follow.next++
	s.follow.subs[id] = fn
	return func() {
		s.follow.mu.Lock()
		delete(s.follow.subs, id)
		s.follow.mu.Unlock()
	}
}

// staleRead keeps the last snapshot for reads while the database is away.
type staleRead struct {
	mu      sync.Mutex
	cfg, st []byte // the last snapshot's config and state, encoded
	has     bool
	down    bool      // an outage is in progress
	retryAt time.Time // until then, reads skip the database
	backoff time.Duration
}

func (r *staleRead) succeeded(snap *core.Snapshot, log *slog.Logger) {
	cfg, err1 := json.Marshal(snap.Config)
	st, err2 := json.Marshal(snap.State)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err1 == nil && err2 == nil {
		r.cfg, r.st, r.has = cfg, st, true
	}
	if r.down {
		log.Info("postgres store reachable again")
	}
	r.down, r.backoff = false, 0
}

// failed records a failed read and returns the last snapshot when err is
// the database being away (not a bad row) and one exists.
func (r *staleRead) failed(err error, now time.Time, log *slog.Logger) (*core.Snapshot, bool) {
	if !isConnectionError(err) {
		return nil, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down {
		log.Warn("postgres store unreachable; routing on the last snapshot, writes fail until it is back", "err", err)
	}
	r.down = true
	if r.backoff == 0 {
		r.backoff = 100 * time.Millisecond
	} else if r.backoff *= 2; r.backoff > 5*time.Second {
		r.backoff = 5 * time.Second
	}
	r.retryAt = now.Add(r.backoff)
	return r.snapshotLocked()
}

// serve returns the last snapshot while an outage's backoff runs.
func (r *staleRead) serve(now time.Time) (*core.Snapshot, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.down || !now.Before(r.retryAt) {
		return nil, false
	}
	return r.snapshotLocked()
}

func (r *staleRead) snapshotLocked() (*core.Snapshot, bool) {
	if !r.has {
		return nil, false
	}
	var cfg *record.ConfigFile
	var st *record.StateFile
	if json.Unmarshal(r.cfg, &cfg) != nil || json.Unmarshal(r.st, &st) != nil {
		return nil, false
	}
	snap, err := core.SnapshotOf(cfg, st)
	return snap, err == nil
}
