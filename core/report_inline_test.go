package core

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// rateHeaders are a response's rate-limit headers: 5h and 7d windows with
// the given utilization, resetting in 3 h and 72 h.
func rateHeaders(five, seven float64) map[string]string {
	return map[string]string{
		"anthropic-ratelimit-unified-5h-utilization": strconv.FormatFloat(five, 'f', -1, 64),
		"anthropic-ratelimit-unified-7d-utilization": strconv.FormatFloat(seven, 'f', -1, 64),
		"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(testStart.Add(3*time.Hour).Unix(), 10),
		"anthropic-ratelimit-unified-7d-reset":       strconv.FormatInt(testStart.Add(72*time.Hour).Unix(), 10),
	}
}

// reportEnv is an inlineEnv over main, an OAuth fallback "a" and an
// API-key account "k", with the usage and token endpoints answering.
func reportEnv(t *testing.T) *testEnv {
	t.Helper()
	env, _ := inlineEnv(t, `"routing":{"mode":"fallback-first"}`, &record.MainState{Quota: fq(70, 70)},
		fb{id: "a", quota: fq(80, 80)}, fb{id: "k", api: true})
	env.fake.script("usage", scripted{status: 200, body: usageJSON(testStart, 60, 60, time.Hour)})
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"new-access","refresh_token":"new-refresh","expires_in":28800}`})
	return env
}

// storeView is what a report may change in the store: the current
// snapshot's state, the observations queued for the next write, the
// generation (a write) and the state file on disk.
type storeView struct {
	state  string
	queued int
	gen    uint64
	disk   string
}

func viewStore(t *testing.T, env *testEnv) storeView {
	t.Helper()
	s := env.engine.store
	s.obsMu.Lock()
	cur, queued := s.cur, len(s.queue)
	s.obsMu.Unlock()
	require.NotNil(t, cur)
	st, err := json.Marshal(cur.State)
	require.NoError(t, err)
	disk, err := os.ReadFile(env.paths.State)
	require.NoError(t, err)
	return storeView{state: string(st), queued: queued, gen: s.generation(), disk: string(disk)}
}

func upstreamCalls(env *testEnv) int {
	return env.fake.count("usage") + env.fake.count("token") + env.fake.count("profile")
}

func eventsOf(env *testEnv) []Event {
	env.evMu.Lock()
	defer env.evMu.Unlock()
	return append([]Event(nil), env.events...)
}

// comparableResult is res with the next route's ticket cleared: tickets are
// unique per engine, everything else must match.
func comparableResult(res *ReportResult) *ReportResult {
	if res == nil {
		return nil
	}
	c := *res
	c.Next = withoutTicket(res.Next)
	return &c
}

func route(id string) Route {
	return Route{AccountID: id, Credential: Credential{Type: "bearer", Token: secret.Secret("token-of-" + id)}}
}

// TestTryReport_servedSameAsReport: a served report is answered by
// TryReport from memory, with Report's answer on a twin engine, the same
// observation in the store (in memory and, once flushed, on disk), the
// same events, and no request upstream.
func TestTryReport_servedSameAsReport(t *testing.T) {
	cases := []struct {
		name string
		req  ReportRequest
		// observes: the report changes the account's state.
		observes bool
		// quotaEvent: the report emits quota/changed.
		quotaEvent bool
	}{
		{name: "main, rate-limit headers", req: ReportRequest{Route: route(MainAccountID), Status: 200, Headers: rateHeaders(0.4, 0.1)}, observes: true, quotaEvent: true},
		{name: "OAuth fallback, rate-limit headers", req: ReportRequest{Route: route("a"), Status: 200, Headers: rateHeaders(0.3, 0.2)}, observes: true, quotaEvent: true},
		{name: "OAuth fallback, no headers", req: ReportRequest{Route: route("a"), Status: 201}, observes: true},
		{name: "API-key account, headers ignored", req: ReportRequest{Route: route("k"), Status: 200, Headers: rateHeaders(0.9, 0.9)}, observes: true},
		{name: "main, no headers", req: ReportRequest{Route: route(MainAccountID), Status: 204}},
		{name: "unknown account", req: ReportRequest{Route: route("gone"), Status: 200, Headers: rateHeaders(0.4, 0.1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			try, full := reportEnv(t), reportEnv(t)
			before := viewStore(t, try)
			require.Equal(t, before, viewStore(t, full), "the twins start alike")

			want, wantErr := full.engine.Report(full.ctx(), tc.req)
			got, err := try.engine.TryReport(tc.req)
			require.NotErrorIs(t, err, ErrWouldWait, "a served report is answered from memory")
			assert.Equal(t, wantErr, err)
			assert.Equal(t, want, got)
			require.NotNil(t, got)
			assert.Equal(t, ActionReturn, got.Action)

			after := viewStore(t, try)
			assert.Equal(t, viewStore(t, full), after, "TryReport and Report leave the same store")
			assert.Equal(t, before.gen, after.gen, "a served report writes nothing at once")
			assert.Equal(t, before.disk, after.disk)
			if tc.observes {
				assert.NotEqual(t, before.state, after.state, "the observation is in memory at once")
				assert.Equal(t, before.queued+1, after.queued, "and queued for the write behind")
			} else {
				assert.Equal(t, before.state, after.state)
			}
			assert.Equal(t, eventsOf(full), eventsOf(try))
			if tc.quotaEvent {
				assert.Contains(t, eventsOf(try), Event{Kind: EventQuotaChanged, Accounts: []string{tc.req.Route.AccountID}})
			} else {
				assert.Empty(t, eventsOf(try))
			}
			assert.Zero(t, upstreamCalls(try), "requests made by TryReport")
			assert.Equal(t, full.state(), try.state(), "the same observation is written")
		})
	}
}

// TestTryReport_withTicket: the route a ticket names is the one reported,
// whichever lane issued it.
func TestTryReport_withTicket(t *testing.T) {
	env := reportEnv(t)
	r, err := env.engine.TrySelect(SelectRequest{})
	require.NoError(t, err)
	require.Equal(t, "a", r.AccountID)
	res, err := env.engine.TryReport(ReportRequest{Route: Route{Ticket: r.Ticket, AccountID: "k"}, Status: 200})
	require.NoError(t, err)
	assert.Equal(t, &ReportResult{Action: ActionReturn, Reason: "success"}, res)
	st := viewStore(t, env)
	var parsed record.StateFile
	require.NoError(t, json.Unmarshal([]byte(st.state), &parsed))
	assert.Equal(t, epochMs(testStart), parsed.Accounts["a"].LastUsed, "the ticket's account served")
	assert.Zero(t, parsed.Accounts["k"].LastUsed, "the echoed account is not trusted")
}

// TestTryReport_refusesWithoutSideEffect: a report that is not served (it
// is classified, and may refresh, poll or select) and any report to a
// store that writes at once are refused before anything happens; Report
// then gives the answer a twin engine gives.
func TestTryReport_refusesWithoutSideEffect(t *testing.T) {
	cases := []struct {
		name         string
		req          ReportRequest
		writeThrough bool
	}{
		{name: "401 on main", req: ReportRequest{Route: route(MainAccountID), Status: 401, Replayable: true}},
		{name: "429 on a fallback, with headers", req: ReportRequest{Route: route("a"), Status: 429, Headers: rateHeaders(1, 0.5), Replayable: true}},
		{name: "500 on main", req: ReportRequest{Route: route(MainAccountID), Status: 500, Body: "overloaded", Replayable: true}},
		{name: "529 on an API-key account", req: ReportRequest{Route: route("k"), Status: 529, Replayable: true}},
		{name: "network failure", req: ReportRequest{Route: route("a"), Network: true, Replayable: true}},
		{name: "stream rate limit on a 200", req: ReportRequest{Route: route("a"), Status: 200, StreamRateLimit: true, Headers: rateHeaders(1, 1), Replayable: true}},
		{name: "write-through store, served with headers", req: ReportRequest{Route: route("a"), Status: 200, Headers: rateHeaders(0.3, 0.2)}, writeThrough: true},
		{name: "write-through store, served API-key", req: ReportRequest{Route: route("k"), Status: 200}, writeThrough: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			try, full := reportEnv(t), reportEnv(t)
			if tc.writeThrough {
				try.engine.store.interval, full.engine.store.interval = -1, -1
			}
			before := viewStore(t, try)

			got, err := try.engine.TryReport(tc.req)
			require.ErrorIs(t, err, ErrWouldWait)
			assert.Nil(t, got)
			assert.Zero(t, upstreamCalls(try), "requests made by a refused TryReport")
			assert.Equal(t, before, viewStore(t, try), "a refused TryReport changed the store")
			assert.Empty(t, eventsOf(try), "a refused TryReport emitted")

			want, wantErr := full.engine.Report(full.ctx(), tc.req)
			got, err = try.engine.Report(try.ctx(), tc.req)
			assert.Equal(t, wantErr, err)
			assert.Equal(t, comparableResult(want), comparableResult(got), "the hand-off gives Report's answer")
		})
	}
}

// TestTryReport_waitsForFiles: once the files are due a look, a served
// report is refused before its observation; Report looks, and TryReport
// answers again within the new window.
func TestTryReport_waitsForFiles(t *testing.T) {
	env, wall := inlineEnv(t, "", nil, fb{id: "a", quota: fq(80, 80)})
	req := ReportRequest{Route: route("a"), Status: 200, Headers: rateHeaders(0.3, 0.2)}
	*wall = wall.Add(externalRecheck)
	before := viewStore(t, env)
	_, err := env.engine.TryReport(req)
	require.ErrorIs(t, err, ErrWouldWait)
	assert.Equal(t, before, viewStore(t, env))
	assert.Empty(t, eventsOf(env))

	_, err = env.engine.Report(env.ctx(), req)
	require.NoError(t, err)
	res, err := env.engine.TryReport(req)
	require.NoError(t, err)
	assert.Equal(t, ActionReturn, res.Action)
}

// TestObserveState_noWaitRefusesBeforeApplying: an observation made for
// a no-wait caller refuses, applying nothing and queueing nothing, when
// the store writes at once or its snapshot must be read again (a write of
// ours left no snapshot: the generation moved).
func TestObserveState_noWaitRefusesBeforeApplying(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *Store)
	}{
		{"write-through", func(s *Store) { s.interval = -1 }},
		{"snapshot moved", func(s *Store) { s.gen.Add(1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, _ := inlineEnv(t, "", nil, fb{id: "a", quota: fq(80, 80)})
			s := env.engine.store
			tc.setup(s)
			before := viewStore(t, env)
			applied := false
			nw := &noWait{}
			ctx := context.WithValue(context.Background(), noWaitKey{}, nw)
			snap, err := s.observeState(ctx, "a", func(*record.StateFile) error { applied = true; return nil })
			require.ErrorIs(t, err, ErrWouldWait)
			assert.Nil(t, snap)
			assert.True(t, nw.waited.Load(), "the wait is recorded for the caller")
			assert.False(t, applied)
			assert.Equal(t, before, viewStore(t, env))
		})
	}
}
