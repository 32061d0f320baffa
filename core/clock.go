package core

import (
	"context"
	"sync"
	"time"
)

// Clock is the only source of time in core. Production code uses
// [SystemClock]; tests and the conformance suite use a [ManualClock] so that
// backoffs and staleness move only when told to.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Sleep waits for d or until ctx is done. A manual clock advances
	// itself by d instead of waiting.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the wall clock. Its zero value is ready to use.
type SystemClock struct{}

// Now implements Clock.Now.
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.Sleep.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ManualClock is a clock that moves only through Set, Advance and Sleep. It
// backs `--clock manual` and every test that involves backoff.
//
// # Notes
//
// Sleep advances the clock by the requested duration and returns at once, so
// an in-call wait (the 1 s gap between usage calls, the retry delays of a
// token refresh) is visible as elapsed time without real waiting.
type ManualClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewManualClock returns a manual clock that starts at start.
func NewManualClock(start time.Time) *ManualClock { return &ManualClock{now: start} }

// Now implements Clock.Now.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t, which may be in the past.
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Sleep implements Clock.Sleep by advancing the clock.
func (c *ManualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d > 0 {
		c.Advance(d)
	}
	return nil
}

// epochMs converts t to the epoch milliseconds used by the upstream files.
func epochMs(t time.Time) int64 { return t.UnixMilli() }

// fromMs converts epoch milliseconds to a time.
func fromMs(ms int64) time.Time { return time.UnixMilli(ms) }
