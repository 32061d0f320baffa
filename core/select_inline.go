package core

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrWouldWait is the answer of TrySelect (and TryReport) when the call
// cannot be answered from memory: a quota poll or a token refresh is due,
// a lock would be taken, or a file must be looked at, read or written.
// The caller then runs [Engine.Select] (or [Engine.Report]), which does
// that work.
var ErrWouldWait = errors.New("call must wait for a poll, a refresh, a lock or a file")

// noWaitKey marks a context whose call must not wait (TrySelect, TryReport).
type noWaitKey struct{}

// noWait records that a no-wait call reached a step that would wait.
// The step refuses and the call's answer is thrown away, even when
// the code on the way swallowed the refusal.
type noWait struct{ waited atomic.Bool }

// mustWait reports whether ctx belongs to a no-wait selection, and if so
// records that the step asking would have waited: every step that polls,
// refreshes, takes a lock or touches a file asks it first, before any
// side effect, and returns ErrWouldWait when it answers true.
func mustWait(ctx context.Context) bool {
	nw, _ := ctx.Value(noWaitKey{}).(*noWait)
	if nw == nil {
		return false
	}
	nw.waited.Store(true)
	return true
}

// lockUnlessWaiting locks mu and reports true; for a no-wait selection
// it only takes mu if it is free, and otherwise records the wait and
// reports false: whoever holds it (a write-behind flush, the cut back to
// the cap) may hold it for milliseconds.
func lockUnlessWaiting(ctx context.Context, mu *sync.Mutex) bool {
	if ctx.Value(noWaitKey{}) == nil {
		mu.Lock()
		return true
	}
	if mu.TryLock() {
		return true
	}
	mustWait(ctx)
	return false
}

// TrySelect is [Engine.Select] for a caller that must not wait (the RPC
// server's read goroutine): it answers from the in-memory snapshot when
// the selection needs no quota poll, no token refresh, no lock and no
// file (not even the periodic look at the files' stamps), and returns
// ErrWouldWait otherwise, having changed nothing. An answer is the one
// Select would give at that moment, ticket included; it runs the same
// selection code, so the two cannot drift apart.
func (e *Engine) TrySelect(req SelectRequest) (*Route, error) {
	r, err := runNoWait(func(ctx context.Context) (*Route, error) { return e.selectRoute(ctx, req) })
	return e.issued(r), err
}

// runNoWait runs a call with the no-wait marker in its context and throws
// its answer away for ErrWouldWait if any step on the way asked to wait
// (TrySelect, TryReport).
func runNoWait[T any](call func(ctx context.Context) (T, error)) (T, error) {
	nw := &noWait{}
	v, err := call(context.WithValue(context.Background(), noWaitKey{}, nw))
	if nw.waited.Load() {
		var zero T
		return zero, ErrWouldWait
	}
	return v, err
}

// stickyWouldRefresh reports, for a no-wait selection, whether resolving a
// sticky session could end in a token refresh: the resolution changes the
// routing state first, so it must not start when it cannot finish.
func stickyWouldRefresh(ctx context.Context, routes []stickyRoute) bool {
	if ctx.Value(noWaitKey{}) == nil {
		return false
	}
	for i := range routes {
		if routes[i].needsToken() {
			return mustWait(ctx)
		}
	}
	return false
}

// stickyScanDue reports whether the next change of the routing state
// walks every assignment: the minutely prune of expired ones, or the cut
// back to the cap (evictInMemory) one more session would start. Either
// takes milliseconds at the cap, too long for the RPC read goroutine.
// c.mu is held.
func stickyScanDue(c *stickyCache, now time.Time) bool {
	if d := now.Sub(c.prunedAt); d >= time.Minute || d < 0 {
		return true
	}
	return len(c.file.Assignments) >= stickyMax+stickySlack
}
