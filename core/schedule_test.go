package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPassSchedulePeriod(t *testing.T) {
	tests := []struct {
		name   string
		sched  PassSchedule
		lo, hi time.Duration // inclusive, exclusive
	}{
		{"zero value is upstream's 60 s + [0, 60 s)", PassSchedule{}, 60 * time.Second, 120 * time.Second},
		{"no jitter", PassSchedule{Interval: 5 * time.Second, Jitter: -1}, 5 * time.Second, 5*time.Second + 1},
		{"own jitter", PassSchedule{Interval: time.Second, Jitter: time.Second}, time.Second, 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 50 {
				d := tc.sched.period()
				assert.GreaterOrEqual(t, d, tc.lo)
				assert.Less(t, d, tc.hi)
			}
		})
	}
}

func TestPassScheduleRunStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rounds := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		PassSchedule{Interval: time.Millisecond, Jitter: -1}.Run(ctx, func(context.Context) { rounds <- struct{}{} })
	}()
	for range 3 {
		select {
		case <-rounds:
		case <-time.After(30 * time.Second):
			require.FailNow(t, "no round ran")
		}
	}
	cancel()
	for {
		select {
		case <-rounds:
			continue // a round that was due when ctx ended
		case <-done:
		case <-time.After(30 * time.Second):
			require.FailNow(t, "Run did not return after ctx ended")
		}
		break
	}
}
