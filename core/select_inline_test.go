package core

import (
	"github.com/acctpool/acctpool/core/record"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// inlineEnv is a routing test engine whose store looks at the files on a
// wall clock that stands still, so the recheck window never passes on its
// own, and whose snapshot and routing state are loaded.
func inlineEnv(t *testing.T, settings string, main *record.MainState, fbs ...fb) (*testEnv, *time.Time) {
	t.Helper()
	env := routeEnv(t, settings, main, fbs...)
	wall := testStart
	env.engine.store.wall = func() time.Time { return wall }
	_, _, err := env.engine.store.current(env.ctx())
	require.NoError(t, err)
	require.NoError(t, env.engine.stickyLoaded(env.ctx()))
	env.engine.router().sticky.prunedAt = testStart // as after a first session
	return env, &wall
}

// withoutTicket is r with its ticket cleared: tickets are unique per
// engine, everything else must match.
func withoutTicket(r *Route) *Route {
	if r == nil {
		return nil
	}
	c := *r
	c.Ticket = ""
	return &c
}

type inlineCase struct {
	name     string
	settings string
	main     *record.MainState
	fbs      []fb
	req      SelectRequest
	// twice selects once before the compared selection (an existing
	// sticky session).
	twice bool
	// waits: TrySelect must refuse (a poll or refresh is due).
	waits bool
}

var inlineCases = []inlineCase{
	{name: "main-first, main usable", fbs: []fb{{id: "a", quota: fq(80, 80)}}},
	{name: "fallback-first, fresh fallback", settings: `"routing":{"mode":"fallback-first"}`, fbs: []fb{{id: "a", quota: fq(80, 80)}, {id: "b", quota: fq(80, 80)}}},
	{name: "fallback-first, first fallback below its minimum", settings: `"routing":{"mode":"fallback-first"},"quota":{"minimumRemaining":{"five_hour":10}}`,
		fbs: []fb{{id: "a", quota: fq(5, 80)}, {id: "b", quota: fq(80, 80)}}},
	{name: "no route: main excluded, fallback spent", settings: `"quota":{"minimumRemaining":{"five_hour":10}}`,
		fbs: []fb{{id: "a", quota: fq(5, 80)}}, req: SelectRequest{Exclude: []string{"main"}}},
	{name: "sticky new session", settings: `"routing":{"mode":"sticky-balanced"}`, main: &record.MainState{Quota: fq(70, 70)},
		fbs: []fb{{id: "a", quota: fq(80, 80)}}, req: SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}},
	{name: "sticky existing session", settings: `"routing":{"mode":"sticky-balanced"}`, main: &record.MainState{Quota: fq(70, 70)},
		fbs: []fb{{id: "a", quota: fq(80, 80)}}, req: SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}, twice: true},
	{name: "fallback token expired: refresh due", settings: `"routing":{"mode":"fallback-first"}`,
		fbs: []fb{{id: "a", quota: fq(80, 80), expires: -time.Hour}}, waits: true},
	{name: "fallback quota unknown: poll due", settings: `"routing":{"mode":"fallback-first"}`, fbs: []fb{{id: "a"}}, waits: true},
	{name: "sticky new session, fallback token expired", settings: `"routing":{"mode":"sticky-balanced"}`, main: &record.MainState{Quota: fq(70, 70)},
		fbs: []fb{{id: "a", quota: fq(80, 80), expires: -time.Hour}}, req: SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}, waits: true},
}

// TestTrySelect_sameAnswerAsSelect: where TrySelect answers, its answer is
// Select's on an identical engine; where it refuses, it made no request
// and changed nothing, and Select then gives the twin's answer.
func TestTrySelect_sameAnswerAsSelect(t *testing.T) {
	for _, tc := range inlineCases {
		t.Run(tc.name, func(t *testing.T) {
			try, _ := inlineEnv(t, tc.settings, tc.main, tc.fbs...)
			full, _ := inlineEnv(t, tc.settings, tc.main, tc.fbs...)
			for _, env := range []*testEnv{try, full} {
				env.fake.script("usage", scripted{status: 200, body: usageJSON(testStart, 60, 60, time.Hour)})
				env.fake.script("token", scripted{status: 200, body: `{"access_token":"new-access","refresh_token":"new-refresh","expires_in":28800}`})
				if tc.twice {
					_, err := env.engine.Select(env.ctx(), tc.req)
					require.NoError(t, err)
				}
			}
			want, wantErr := full.engine.Select(full.ctx(), tc.req)

			before := try.engine.store.generation()
			sticky := stickyState(t, try)
			got, err := try.engine.TrySelect(tc.req)
			if tc.waits {
				require.ErrorIs(t, err, ErrWouldWait)
				assert.Nil(t, got)
				assert.Zero(t, try.fake.count("usage")+try.fake.count("token"), "requests made by a refused TrySelect")
				assert.Equal(t, before, try.engine.store.generation(), "a refused TrySelect wrote")
				assert.Equal(t, sticky, stickyState(t, try), "a refused TrySelect changed the routing state")
				got, err = try.engine.Select(try.ctx(), tc.req)
			} else {
				assert.Zero(t, try.fake.count("usage")+try.fake.count("token"), "requests made by TrySelect")
			}
			if wantErr != nil {
				require.Error(t, err)
				assert.Equal(t, noRoute(t, wantErr), noRoute(t, err))
				return
			}
			require.NoError(t, err)
			assert.NotEmpty(t, got.Ticket)
			assert.Equal(t, withoutTicket(want), withoutTicket(got))
			_, ticket := try.engine.reportedRoute(Route{Ticket: got.Ticket})
			assert.NotNil(t, ticket, "the inline route's ticket is remembered for route/report")
		})
	}
}

// stickyState is the in-memory routing state: the assignments and the
// changes waiting to be written.
func stickyState(t *testing.T, env *testEnv) string {
	c := &env.engine.router().sticky
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.file == nil {
		return ""
	}
	b, err := c.file.MarshalJSON()
	require.NoError(t, err)
	return string(b) + "|" + itoa(int64(len(c.ops)))
}

// TestTrySelect_waitsForFiles: once the recheck window has passed, looking
// at the files is I/O, so TrySelect refuses; Select looks, and TrySelect
// answers again within the new window.
func TestTrySelect_waitsForFiles(t *testing.T) {
	env, wall := inlineEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "a", quota: fq(80, 80)})
	r, err := env.engine.TrySelect(SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, "a", r.AccountID)

	*wall = wall.Add(externalRecheck)
	_, err = env.engine.TrySelect(SelectRequest{})
	require.ErrorIs(t, err, ErrWouldWait)

	r, err = env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, "a", r.AccountID)
	r, err = env.engine.TrySelect(SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, "a", r.AccountID)

	// Another process's change is read by Select, never by TrySelect.
	cfg, _ := routeFiles(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "b", quota: fq(80, 80)})
	require.NoError(t, os.WriteFile(env.paths.Config, []byte(cfg), 0o600))
	*wall = wall.Add(externalRecheck)
	_, err = env.engine.TrySelect(SelectRequest{})
	require.ErrorIs(t, err, ErrWouldWait)
}

// TestTrySelect_writeThroughWaits: a store that writes at once (negative
// write-behind) makes a new sticky session a write, so TrySelect refuses
// it but still answers an existing session from memory.
func TestTrySelect_writeThroughWaits(t *testing.T) {
	env, _ := inlineEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(70, 70)}, fb{id: "a", quota: fq(80, 80)})
	env.engine.store.interval = -1
	req := SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}
	_, err := env.engine.TrySelect(req)
	require.ErrorIs(t, err, ErrWouldWait)
	first, err := env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	require.NoError(t, env.engine.stickyLoaded(env.ctx()))
	again, err := env.engine.TrySelect(req)
	require.NoError(t, err)
	assert.Equal(t, first.AccountID, again.AccountID)
	assert.Equal(t, "sticky: session affinity", again.Reason)
}

// TestTrySelect_scanDueWaits: a new session whose change would walk every
// assignment (the minutely prune of expired ones) is handed to Select;
// the next new session is answered from memory again.
func TestTrySelect_scanDueWaits(t *testing.T) {
	env, _ := inlineEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(70, 70)}, fb{id: "a", quota: fq(80, 80)})
	env.clock.Advance(time.Minute)
	req := SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}
	_, err := env.engine.TrySelect(req)
	require.ErrorIs(t, err, ErrWouldWait)
	_, err = env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	r, err := env.engine.TrySelect(SelectRequest{SessionID: "s2", Model: "claude-sonnet-4", PromptBytes: 100})
	require.NoError(t, err)
	assert.Equal(t, "sticky: new session (weighted allocation)", r.Reason)
}

// TestTrySelect_busyRoutingStateWaits: while another goroutine holds the
// routing state (a flush, the cut back to the cap), a sticky TrySelect
// refuses rather than block; once it is free, it answers.
func TestTrySelect_busyRoutingStateWaits(t *testing.T) {
	env, _ := inlineEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(70, 70)}, fb{id: "a", quota: fq(80, 80)})
	req := SelectRequest{SessionID: "s1", Model: "claude-sonnet-4", PromptBytes: 100}
	c := &env.engine.router().sticky
	c.mu.Lock()
	_, err := env.engine.TrySelect(req)
	c.mu.Unlock()
	require.ErrorIs(t, err, ErrWouldWait)
	r, err := env.engine.TrySelect(req)
	require.NoError(t, err)
	assert.Equal(t, "sticky: new session (weighted allocation)", r.Reason)
}
