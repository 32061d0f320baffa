package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

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
