package core

import (
	"fmt"
	"os"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
)

// stickyFixture is a sticky-balanced engine with main and seven OAuth
// fallbacks, all with fresh quota, and 4096 sessions already assigned
// round-robin in the routing state file.
func stickyFixture(tb testing.TB) (*testEnv, []SelectRequest, map[string]string) {
	t, ok := tb.(*testing.T)
	if !ok {
		t = &testing.T{}
	}
	fbs := make([]fb, 7)
	for i := range fbs {
		fbs[i] = fb{id: fmt.Sprintf("fb-%d", i), quota: fq(60+float64(i), 70)}
	}
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &MainState{Quota: fq(90, 90)}, fbs...)
	ids := []string{MainAccountID}
	for _, f := range fbs {
		ids = append(ids, f.id)
	}
	file := stickyFile{Version: 1, UpdatedAt: ms(testStart), Assignments: map[string]*stickyAssignment{}}
	reqs := make([]SelectRequest, stickyMax)
	want := map[string]string{}
	for i := range reqs {
		sid := fmt.Sprintf("session-%04d", i)
		reqs[i] = SelectRequest{SessionID: sid, Model: "claude-opus-4-7", PromptBytes: 50_000}
		key := sessionKey(sid)
		acct := ids[i%len(ids)]
		want[sid] = acct
		file.Assignments[fmt.Sprintf("%x", key[:])] = &stickyAssignment{AccountID: acct, Family: "opus", AffinityModelID: "claude-opus-4-7",
			AssignedAt: ms(testStart), LastSeenAt: ms(testStart), InitialInputBytes: 50_000, QuotaCheckedAt: ms(freshAt)}
	}
	raw, err := json.Marshal(file)
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(env.paths.RoutingState, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	return env, reqs, want
}

// TestStickyFixture checks the benchmark's answer: every session is routed
// to its assigned account from memory, and the routing file is not
// rewritten.
func TestStickyFixture(t *testing.T) {
	env, reqs, want := stickyFixture(t)
	before, err := stampOf(env.paths.RoutingState)
	require.NoError(t, err)
	for _, req := range reqs {
		r, err := env.engine.Select(env.ctx(), req)
		require.NoError(t, err)
		require.Equal(t, want[req.SessionID], r.AccountID)
		require.Equal(t, &StickyInfo{}, r.Sticky)
	}
	after, err := stampOf(env.paths.RoutingState)
	require.NoError(t, err)
	require.True(t, before.same(after))
	require.Equal(t, 0, env.fake.count("usage")+env.fake.count("token"))
}

func BenchmarkSelect(b *testing.B) {
	b.Run("sticky_8_accounts_4096_sessions", func(b *testing.B) {
		env, reqs, _ := stickyFixture(b)
		ctx := env.ctx()
		for _, req := range reqs { // warm the caches
			if _, err := env.engine.Select(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := env.engine.Select(ctx, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("main_first_8_accounts", func(b *testing.B) {
		fbs := make([]fb, 7)
		for i := range fbs {
			fbs[i] = fb{id: fmt.Sprintf("fb-%d", i), quota: fq(60, 70)}
		}
		env := routeEnv(&testing.T{}, "", &MainState{Quota: fq(90, 90)}, fbs...)
		ctx := env.ctx()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := env.engine.Select(ctx, SelectRequest{Model: "claude-opus-4-7"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	_ = time.Second
}
