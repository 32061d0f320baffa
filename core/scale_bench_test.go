package core

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
)

// The scaling benchmarks of issue 16, named for benchstat
// (BenchmarkScale<What>/accounts=N, /sessions=N):
//
//	go test ./core -run '^$' -bench 'Scale' -benchtime 2000x -count 5 | benchstat -
//
// They measure the request path. Observations are written behind with the
// real one-second timer (BenchmarkScaleReport, BenchmarkScaleSelectReport)
// or, for the sticky ones, not at all inside the loop: the routing state's
// flush is BenchmarkScaleStickyFlush.

var scaleAccounts = []int{4, 16, 64, 256}

var scaleSessions = []int{0, 1024, 4096}

// scaleEngine is a fallback-first engine with n OAuth fallbacks, all with
// fresh quota, and the route to the first one.
func scaleEngine(b *testing.B, n int) (*Engine, *Route) {
	fbs := make([]fb, n)
	for i := range fbs {
		fbs[i] = fb{id: fmt.Sprintf("fb-%03d", i), quota: fq(80, 80)}
	}
	e, _ := benchEngine(b, `"routing":{"mode":"fallback-first"}`, &record.MainState{Quota: fq(90, 90)}, fbs...)
	r, err := e.Select(context.Background(), SelectRequest{Model: "claude-opus-4-7"})
	require.NoError(b, err)
	require.Equal(b, "fb-000", r.AccountID)
	return e, r
}

var scaleHeaders = map[string]string{
	"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1",
	"anthropic-ratelimit-unified-5h-reset": "1795881600", "anthropic-ratelimit-unified-7d-reset": "1796400000",
}

// BenchmarkScaleReport is route/report of a served response with
// rate-limit headers on a fallback (header quota and lastUsed).
func BenchmarkScaleReport(b *testing.B) {
	for _, n := range scaleAccounts {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			e, r := scaleEngine(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Report(ctx, ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: scaleHeaders}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScaleSelectReport is one select + report cycle.
func BenchmarkScaleSelectReport(b *testing.B) {
	for _, n := range scaleAccounts {
		b.Run(fmt.Sprintf("accounts=%d", n), func(b *testing.B) {
			e, _ := scaleEngine(b, n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r, err := e.Select(ctx, SelectRequest{Model: "claude-opus-4-7"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Report(ctx, ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: scaleHeaders}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// stickySessions is a sticky-balanced engine (main and seven fallbacks)
// whose routing state holds n sessions; its flushes run only by hand.
func stickySessions(b *testing.B, n int) (*Engine, *manualTimers) {
	fbs := make([]fb, 7)
	for i := range fbs {
		fbs[i] = fb{id: fmt.Sprintf("fb-%d", i), quota: fq(60+float64(i), 70)}
	}
	e, paths := benchEngine(b, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(90, 90)}, fbs...)
	timers := &manualTimers{}
	var err error
	e.store, err = NewStore(StoreOptions{Paths: paths, AfterFunc: timers.AfterFunc})
	require.NoError(b, err)
	file := stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1, UpdatedAt: ms(testStart), Assignments: map[string]*stickyAssignment{}}}
	ids := []string{MainAccountID, "fb-0", "fb-1", "fb-2", "fb-3", "fb-4", "fb-5", "fb-6"}
	for i := range n {
		key := sessionKey(fmt.Sprintf("old-%05d", i))
		file.Assignments[fmt.Sprintf("%x", key[:])] = &stickyAssignment{AccountID: ids[i%len(ids)], Family: "opus", AffinityModelID: "claude-opus-4-7",
			AssignedAt: ms(testStart), LastSeenAt: ms(testStart) - int64(i), InitialInputBytes: 50_000, QuotaCheckedAt: ms(freshAt)}
	}
	raw, err := json.Marshal(file)
	require.NoError(b, err)
	require.NoError(b, os.WriteFile(paths.RoutingState, raw, 0o600))
	return e, timers
}

// BenchmarkScaleStickyNewSession is route/select of a session the routing
// state does not know: the weighted allocation and the in-memory
// assignment. Below the cap the new session is dropped again after each
// select (so the count stays n); at the cap each one evicts the oldest.
func BenchmarkScaleStickyNewSession(b *testing.B) {
	for _, n := range scaleSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			e, _ := stickySessions(b, n)
			ctx := context.Background()
			c := &e.router().sticky
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				req := SelectRequest{SessionID: fmt.Sprintf("new-%d", i), Model: "claude-opus-4-7", PromptBytes: 50_000}
				r, err := e.Select(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if r.Sticky == nil || !r.Sticky.Created {
					b.Fatalf("not a new session: %+v", r.Sticky)
				}
				c.mu.Lock()
				if n < stickyMax {
					c.file.remove(sessionKey(req.SessionID))
				}
				c.ops = c.ops[:0] // the flush is measured apart
				c.mu.Unlock()
			}
		})
	}
}

// BenchmarkScaleStickyFlush is the routing state's write-behind flush of
// one new session: lock, re-read, prune, replay, write.
func BenchmarkScaleStickyFlush(b *testing.B) {
	for _, n := range scaleSessions {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			e, _ := stickySessions(b, n)
			ctx := context.Background()
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				i++
				if _, err := e.Select(ctx, SelectRequest{SessionID: fmt.Sprintf("new-%d", i), Model: "claude-opus-4-7", PromptBytes: 50_000}); err != nil {
					b.Fatal(err)
				}
				if err := e.Flush(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScaleLoad is Store.Load of n accounts next to a plain decode
// (into generic values) of the same bytes.
func BenchmarkScaleLoad(b *testing.B) {
	for _, n := range scaleAccounts {
		e, paths := func() (*Engine, Paths) {
			fbs := make([]fb, n)
			for i := range fbs {
				fbs[i] = fb{id: fmt.Sprintf("fb-%03d", i), quota: fq(80, 80)}
			}
			return benchEngine(b, `"routing":{"mode":"fallback-first"}`, &record.MainState{Quota: fq(90, 90)}, fbs...)
		}()
		b.Run(fmt.Sprintf("op=load/accounts=%d", n), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.store.Load(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("op=plain_decode/accounts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, p := range []string{paths.Config, paths.State} {
					raw, err := os.ReadFile(p)
					if err != nil {
						b.Fatal(err)
					}
					var v any
					if err := json.Unmarshal(raw, &v); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
