package core

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
)

func TestPlanReport(t *testing.T) {
	rl := verdict.Verdict{Class: verdict.ClassRateLimited}
	auth := verdict.Verdict{Class: verdict.ClassAuthExpired}
	org := verdict.Verdict{Class: verdict.ClassOrgPolicy}
	down := verdict.Verdict{Class: verdict.ClassTransient}
	messages := func(v verdict.Verdict, status int, fallbackOn ...int) verdict.Effect {
		s := defaultSettings()
		if len(fallbackOn) > 0 {
			s.FallbackOn = fallbackOn
		}
		return effectFor(s, verdict.Failure{Source: verdict.SourceMessages, Status: status}, v)
	}
	main := reportFacts{kind: KindMain, replayable: true, status: "429"}
	oauth := reportFacts{kind: KindOAuth, replayable: true, status: "401"}
	api := reportFacts{kind: KindAPI, replayable: true, status: "401"}
	sticky := reportFacts{kind: KindOAuth, sticky: true, replayable: true, status: "429"}
	retried := oauth
	retried.authRetried = true
	stickyRetried := sticky
	stickyRetried.authRetried = true
	waiting := main
	waiting.apiWaiting = true
	streamed := main
	streamed.replayable = false
	refreshErr := errors.New("token endpoint 503")
	relogin := fmt.Errorf("refresh: %w", ErrInvalidGrant)
	hold := policy.Judgement{Usable: true, Hold: true, Reason: policy.ReasonResetsShortly, Until: policyNow.Add(10 * time.Minute)}
	migrate := policy.Judgement{Reason: policy.ReasonWindowSpent, Detail: "seven-day quota exhausted"}

	tests := []struct {
		name    string
		rf      reportFacts
		v       verdict.Verdict
		eff     verdict.Effect
		out     reportOutcome
		step    planStep
		confirm bool
		migrate bool
		api     bool
	}{
		{"a request that cannot be replayed returns", streamed, rl, messages(rl, 429), reportOutcome{}, planReturn, false, false, false},
		{"ordered 429 moves on", main, rl, messages(rl, 429), reportOutcome{}, planMoveOn, false, false, false},
		{"main 429 with API-key routes waiting confirms main first", waiting, rl, messages(rl, 429), reportOutcome{}, planMoveOn, true, false, false},
		{"ordered 5xx returns", main, down, messages(down, 503), reportOutcome{}, planReturn, false, false, false},
		{"a status outside fallbackOn returns", main, rl, messages(rl, 429, 403), reportOutcome{}, planReturn, false, false, false},
		{"a status added to fallbackOn moves", main, down, messages(down, 529, 401, 403, 429, 529), reportOutcome{}, planMoveOn, false, false, false},
		{"ordered 401 moves on first", oauth, auth, messages(auth, 401), reportOutcome{}, planMoveOn, false, false, false},
		{"ordered 401 with no other account refreshes here", oauth, auth, messages(auth, 401), reportOutcome{noneCanServe: true}, planRefreshHere, false, false, false},
		{"ordered 401 outside fallbackOn refreshes here", oauth, auth, messages(auth, 401, 429), reportOutcome{}, planRefreshHere, false, false, false},
		{"ordered 401 after a refresh with no other account returns", retried, auth, messages(auth, 401), reportOutcome{noneCanServe: true}, planReturn, false, false, false},
		{"ordered refresh failure returns", oauth, auth, messages(auth, 401), reportOutcome{noneCanServe: true, refreshFailed: refreshErr}, planReturn, false, false, false},
		{"an API-key route's 401 never refreshes", api, auth, messages(auth, 401), reportOutcome{noneCanServe: true}, planReturn, false, false, false},
		{"sticky 401 refreshes here", sticky, auth, messages(auth, 401), reportOutcome{}, planRefreshHere, false, false, false},
		{"sticky second 401 migrates", stickyRetried, auth, messages(auth, 401), reportOutcome{}, planMoveOn, false, true, false},
		{"sticky refresh that needs a re-login migrates", sticky, auth, messages(auth, 401), reportOutcome{refreshFailed: relogin}, planMoveOn, false, true, false},
		{"sticky refresh failure keeps the affinity", sticky, auth, messages(auth, 401), reportOutcome{refreshFailed: refreshErr}, planReturn, false, false, false},
		{"sticky 403 migrates", sticky, org, messages(org, 403), reportOutcome{}, planMoveOn, false, true, false},
		{"sticky 5xx keeps the affinity", sticky, down, messages(down, 503), reportOutcome{}, planReturn, false, false, false},
		{"sticky 429 probes the quota", sticky, rl, messages(rl, 429), reportOutcome{}, planProbeQuota, false, false, false},
		{"sticky 429 whose probe failed keeps the affinity", sticky, rl, messages(rl, 429), reportOutcome{probed: true, probeFailed: refreshErr}, planReturn, false, false, false},
		{"sticky 429 with a reset within 15 minutes holds", sticky, rl, messages(rl, 429), reportOutcome{probed: true, probe: hold}, planHold, false, false, false},
		{"sticky 429 not exhausted keeps the affinity", sticky, rl, messages(rl, 429), reportOutcome{probed: true, probe: policy.Judgement{Usable: true}}, planReturn, false, false, false},
		{"sticky 429 spent migrates, API-key routes allowed", sticky, rl, messages(rl, 429), reportOutcome{probed: true, probe: migrate}, planMoveOn, false, true, true},
		{"sticky move with no account left returns", sticky, org, messages(org, 403), reportOutcome{noneCanServe: true}, planReturn, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := planReport(tc.rf, tc.v, tc.eff, tc.out)
			assert.Equal(t, tc.step, p.step)
			assert.Equal(t, tc.confirm, p.confirmMain, "confirmMain")
			assert.Equal(t, tc.migrate, p.migrate, "migrate")
			assert.Equal(t, tc.api, p.apiIfNone, "apiIfNone")
			if p.step == planReturn || p.step == planHold || p.step == planMoveOn {
				assert.NotEmpty(t, p.why)
			}
		})
	}
}

// TestReport_ticketDecides: a route's ticket, not the host's echo, says
// which account failed, what kind it is and whether a 401 was already
// answered with a refresh; the credential need not be echoed.
func TestReport_ticketDecides(t *testing.T) {
	env := routeEnv(t, "", nil)
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"main-access-2","refresh_token":"main-refresh-2","expires_in":28800}`})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	if !assert.NoError(t, err) {
		return
	}
	assert.Equal(t, KindMain, r.Kind)
	assert.NotEmpty(t, r.Ticket)
	echo := Route{Ticket: r.Ticket, AccountID: MainAccountID, Kind: KindAPI, AuthRetried: true}
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: echo, Status: 401, Replayable: true, Body: "expired"})
	assert.NoError(t, err)
	assert.Equal(t, ActionRetry, res.Action, res.Reason)
	assert.Equal(t, 1, env.fake.count("token"), "the ticket says no refresh happened yet and main is OAuth")
	if assert.NotNil(t, res.Next) {
		assert.True(t, res.Next.AuthRetried)
		assert.NotEmpty(t, res.Next.Ticket)
		assert.NotEqual(t, r.Ticket, res.Next.Ticket)
		// The second 401 on the retried route: the ticket says a refresh
		// already happened, whatever the echo claims.
		again := Route{Ticket: res.Next.Ticket, AccountID: MainAccountID}
		res2, err := env.engine.Report(env.ctx(), ReportRequest{Route: again, Status: 401, Replayable: true})
		assert.NoError(t, err)
		assert.Equal(t, ActionReturn, res2.Action, res2.Reason)
		assert.Equal(t, 1, env.fake.count("token"))
	}
}

// TestReport_kindFromSnapshot: without a ticket the echoed kind is still
// ignored; the snapshot says main is an OAuth account that can refresh.
func TestReport_kindFromSnapshot(t *testing.T) {
	env := routeEnv(t, "", nil)
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"main-access-2","refresh_token":"main-refresh-2","expires_in":28800}`})
	echo := Route{AccountID: MainAccountID, Kind: KindAPI, Credential: Credential{Type: "bearer", Token: "main-access"}}
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: echo, Status: 401, Replayable: true})
	assert.NoError(t, err)
	assert.Equal(t, ActionRetry, res.Action, res.Reason)
	assert.Equal(t, 1, env.fake.count("token"))
}

func TestTicketBookIsBounded(t *testing.T) {
	env := routeEnv(t, "", nil)
	first := env.engine.issued(&Route{AccountID: MainAccountID})
	for range ticketCap {
		env.engine.issued(&Route{AccountID: MainAccountID})
	}
	_, tk := env.engine.reportedRoute(Route{Ticket: first.Ticket})
	assert.Nil(t, tk, "the oldest ticket was evicted")
	assert.Len(t, env.engine.router().tickets.byID, ticketCap)
	last := env.engine.issued(&Route{AccountID: "fb", Attempted: []string{MainAccountID}})
	r, tk := env.engine.reportedRoute(Route{Ticket: last.Ticket, AccountID: "forged"})
	if assert.NotNil(t, tk) {
		assert.Equal(t, "fb", r.AccountID)
		assert.Equal(t, []string{MainAccountID}, r.Attempted)
	}
}
