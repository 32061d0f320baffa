package core

import (
	"context"
	"math/rand/v2"
	"time"
)

// PassSchedule times the background passes (BEHAVIOUR.md §2.3): a round
// every Interval plus a jitter drawn once from [0, Jitter), as upstream's
// background timer does, so that processes started together spread out.
// A zero Interval or Jitter is upstream's 60 s; a negative Jitter is none.
type PassSchedule struct {
	Interval time.Duration
	Jitter   time.Duration
}

// period is the time between two rounds, its jitter drawn now.
func (p PassSchedule) period() time.Duration {
	d := p.Interval
	if d <= 0 {
		d = 60 * time.Second
	}
	jitter := p.Jitter
	if jitter == 0 {
		jitter = 60 * time.Second
	}
	if jitter > 0 {
		d += rand.N(jitter)
	}
	return d
}

// Run calls round once per period until ctx ends; a round still running
// when the next is due delays it. It runs on real time, never on the
// engine's clock: under a manual clock hosts run no schedule, and the
// passes run only when asked.
func (p PassSchedule) Run(ctx context.Context, round func(context.Context)) {
	t := time.NewTicker(p.period())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		round(ctx)
	}
}

// RunPasses is one background round: the refresh pass, then the quota
// pass. Failures are logged; the next round tries again.
func (e *Engine) RunPasses(ctx context.Context) {
	if sum, err := e.RefreshDue(ctx); err != nil {
		e.log.Warn("background refresh pass failed", "err", err)
	} else {
		e.log.Debug("background refresh pass", "accounts", len(sum.Results))
	}
	if sum, err := e.RefreshQuotaDue(ctx); err != nil {
		e.log.Warn("background quota pass failed", "err", err)
	} else {
		e.log.Debug("background quota pass", "accounts", len(sum.Results))
	}
}
