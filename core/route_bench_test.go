package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
)

// benchEngine is an engine over temp files and a manual clock, with
// upstream endpoints that refuse connections: the benchmarked paths make
// no calls.
func benchEngine(tb testing.TB, settings string, main *record.MainState, fbs ...fb) (*Engine, Paths) {
	dir := tb.TempDir()
	paths := Paths{Config: filepath.Join(dir, "anthropic-auth.json"), State: filepath.Join(dir, "anthropic-auth-state.json"),
		RoutingState: filepath.Join(dir, "anthropic-auth-routing-state.json")}
	cfg, st := routeFiles(tb, settings, main, fbs...)
	require.NoError(tb, os.WriteFile(paths.Config, []byte(cfg), 0o600))
	require.NoError(tb, os.WriteFile(paths.State, []byte(st), 0o600))
	store, err := NewStore(StoreOptions{Paths: paths})
	require.NoError(tb, err)
	e, err := New(Options{Store: store, Clock: NewManualClock(testStart),
		Endpoints: Endpoints{Token: "http://127.0.0.1:1/token", Usage: "http://127.0.0.1:1/usage", Profile: "http://127.0.0.1:1/profile"}})
	require.NoError(tb, err)
	e.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(8 * time.Hour))})
	return e, paths
}

// stickyFixture is a sticky-balanced engine with main and seven OAuth
// fallbacks, all with fresh quota, and 4096 sessions already assigned
// round-robin in the routing state file.
func stickyFixture(tb testing.TB) (*Engine, Paths, []SelectRequest, map[string]string) {
	fbs := make([]fb, 7)
	for i := range fbs {
		fbs[i] = fb{id: fmt.Sprintf("fb-%d", i), quota: fq(60+float64(i), 70)}
	}
	e, paths := benchEngine(tb, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(90, 90)}, fbs...)
	ids := []string{MainAccountID}
	for _, f := range fbs {
		ids = append(ids, f.id)
	}
	file := stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1, UpdatedAt: ms(testStart), Assignments: map[string]*stickyAssignment{}}}
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
	require.NoError(tb, err)
	require.NoError(tb, os.WriteFile(paths.RoutingState, raw, 0o600))
	return e, paths, reqs, want
}

// TestStickyFixture checks the benchmark's answer: every session is routed
// to its assigned account from memory, and the routing file is not
// rewritten.
func TestStickyFixture(t *testing.T) {
	e, paths, reqs, want := stickyFixture(t)
	before, err := filestore.StampOf(paths.RoutingState)
	require.NoError(t, err)
	for _, req := range reqs {
		r, err := e.Select(context.Background(), req)
		require.NoError(t, err)
		require.Equal(t, want[req.SessionID], r.AccountID)
		require.Equal(t, &StickyInfo{}, r.Sticky)
	}
	after, err := filestore.StampOf(paths.RoutingState)
	require.NoError(t, err)
	require.True(t, before.Same(after))
}

func BenchmarkSelect(b *testing.B) {
	b.Run("sticky_8_accounts_4096_sessions", func(b *testing.B) {
		e, _, reqs, _ := stickyFixture(b)
		ctx := context.Background()
		for _, req := range reqs { // warm the caches
			if _, err := e.Select(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := e.Select(ctx, reqs[i%len(reqs)]); err != nil {
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
		e, _ := benchEngine(b, "", &record.MainState{Quota: fq(90, 90)}, fbs...)
		ctx := context.Background()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Select(ctx, SelectRequest{Model: "claude-opus-4-7"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
