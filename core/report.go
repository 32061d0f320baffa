package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Report takes the outcome of a routed request and decides what the host
// does next: return the response, retry on Next, or hold with a 429 and
// Retry-After. A failure is classified (plugins first) with source
// messages; its effects come from the one effects table (policy.EffectFor),
// and what follows from them from the one report plan (policy.PlanReport):
// Report only carries the plan out, doing the I/O it names (a token
// refresh, a quota probe, the next selection) and asking again with the
// outcome (BEHAVIOUR.md §5).
//
// Report also harvests the response's rate-limit headers into the
// account's quota (a 429 that names spent windows takes the account out
// until their reset), and records lastUsed when a fallback served.
func (e *Engine) Report(ctx context.Context, req ReportRequest) (*ReportResult, error) {
	route, ticket := e.reportedRoute(req.Route)
	if route.AccountID == "" {
		return nil, errorf(ErrConfigInvalid, "field route.accountId: report needs the route it answers")
	}
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	kind := kindOf(snap, route.AccountID)
	h := make(http.Header, len(req.Headers))
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	now := e.now()
	served := req.served()
	f := verdict.Failure{Source: verdict.SourceMessages, Status: req.Status, Network: req.Network, Header: h, Body: []byte(req.Body),
		Message: secret.Redact(shorten(req.Body, anthropic.MaxBodyExcerpt), route.Credential.Token), StreamRateLimit: req.StreamRateLimit, At: now}
	var v verdict.Verdict
	if !served {
		v = e.Classify(ctx, f)
	}
	touch := served && kind != KindMain
	switch {
	case (kind == KindMain || kind == KindOAuth) && len(h) > 0:
		if _, err := e.observeHeaders(ctx, route.AccountID, h, v.Class == verdict.ClassRateLimited, served, touch); err != nil && !errors.Is(err, ErrWouldWait) {
			e.log.Debug("harvest rate-limit headers", "account", route.AccountID, "err", err)
		}
	case touch:
		e.touchLastUsed(ctx, route.AccountID)
	}
	if served {
		return &ReportResult{Action: ActionReturn, Reason: "success"}, nil
	}
	if snap, err = e.routeSnapshot(ctx); err != nil {
		return nil, err
	}
	rf := policy.ReportFacts{Kind: kind, Sticky: e.routeIsSticky(snap, route, ticket), AuthRetried: route.AuthRetried, Replayable: req.Replayable,
		APIWaiting: hasAPIRoute(snap) && !mainFreshExhausted(snap, now), Status: statusText(f)}
	return e.carryOut(ctx, route, rf, v, policy.EffectFor(snap.Settings, f, v))
}

// carryOut does what the report plan says, asking the plan again after
// each step's I/O until it says return, retry or hold.
func (e *Engine) carryOut(ctx context.Context, route Route, rf policy.ReportFacts, v verdict.Verdict, eff verdict.Effect) (*ReportResult, error) {
	res := &ReportResult{Verdict: &v, Action: ActionReturn}
	var out policy.ReportOutcome
	for range 6 { // each outcome is learned once, so the plan settles in a few steps
		p := policy.PlanReport(rf, v, eff, out)
		switch p.Step {
		case policy.PlanReturn:
			res.Reason = p.Why
			return res, nil
		case policy.PlanHold:
			nr := stickyHoldNoRoute(sessionKey(route.SessionID), route.AccountID, p.Hold, e.now())
			res.Action, res.RetryAfterMs, res.NoRoute, res.Reason = ActionHold, nr.NoRoute.RetryAfterMs, &nr.NoRoute, p.Why
			return res, nil
		case policy.PlanRefreshHere:
			next, err := e.refreshRoute(ctx, route)
			if err == nil {
				res.Action, res.Next, res.Reason = ActionRetry, next, next.Reason
				return res, nil
			}
			out.RefreshFailed = failureOf(err)
		case policy.PlanProbeQuota:
			q, err := e.fetchQuota(ctx, route.AccountID)
			out.Probed, out.ProbeFailed = true, failureOf(err)
			if err == nil {
				out.Probe = policy.StickyDecision(q, route.Model, e.now())
			}
		case policy.PlanMoveOn:
			next, err := e.moveOn(ctx, route, p)
			var nr *NoRouteError
			switch {
			case err == nil:
				res.Action, res.Next, res.Reason = ActionRetry, next, next.Reason
				return res, nil
			case !errors.As(err, &nr):
				return nil, err
			}
			res.NoRoute = &nr.NoRoute
			out.NoneCanServe = true
		}
	}
	return res, nil
}

// moveOn selects the next account for a failed route: ordered modes skip
// every account tried; a sticky session migrates (and, after a rate
// limit with no OAuth account left, may go to an API-key route once main
// is confirmed spent).
func (e *Engine) moveOn(ctx context.Context, route Route, p policy.ReportPlan) (*Route, error) {
	attempted := attemptedAfter(route)
	o := newRouteOpts(attempted)
	sel := SelectRequest{SessionID: route.SessionID, Model: route.Model, PromptBytes: route.PromptBytes}
	if p.Migrate {
		o.why = "migrated after " + route.AccountID + " " + p.Why
		next, err := e.stickySlow(ctx, sel, o, sessionKey(route.SessionID))
		if err != nil && p.APIIfNone && errors.Is(err, ErrNoRoute) {
			if fresh, serr := e.routeSnapshot(ctx); serr == nil && mainFreshExhausted(fresh, e.now()) && hasAPIRoute(fresh) {
				if api, aerr := e.selectAPIOnly(ctx, fresh, route, attempted); aerr == nil {
					return e.issued(api), nil
				}
			}
		}
		return e.issued(next), err
	}
	o.why = fmt.Sprintf("after %s %s", route.AccountID, p.Why)
	if p.ConfirmMain {
		o.includeAPI = e.confirmMainExhausted(ctx)
	}
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	sel.Exclude = attempted
	next, err := e.selectOrdered(ctx, snap, sel, o)
	return e.issued(next), err
}

func statusText(f verdict.Failure) string {
	switch {
	case f.StreamRateLimit:
		return "stream rate_limit_error"
	case f.Network:
		return "network error"
	}
	return fmt.Sprintf("%d", f.Status)
}

// refreshRoute refreshes the token of an OAuth route after a 401 (main:
// unless someone already replaced the rejected token) and returns the same
// route with the new credential, marked AuthRetried.
func (e *Engine) refreshRoute(ctx context.Context, route Route) (*Route, error) {
	var next *Route
	if route.AccountID == MainAccountID {
		c, err := e.ensureMainFresh(ctx, route.Credential.Token)
		if err != nil {
			return nil, err
		}
		next = mainRoute(c)
	} else {
		a, err := e.refreshFallback(ctx, route.AccountID, true)
		if err != nil {
			return nil, err
		}
		next = accountRoute(a)
	}
	next.SessionID, next.Model, next.PromptBytes, next.Sticky = route.SessionID, route.Model, route.PromptBytes, route.Sticky
	next.Attempted = route.Attempted
	next.AuthRetried = true
	next.Reason = "401: token refreshed, retrying on the same account"
	return e.issued(next), nil
}

func attemptedAfter(route Route) []string {
	out := make([]string, 0, len(route.Attempted)+1)
	out = append(out, route.Attempted...)
	if !slices.Contains(out, route.AccountID) {
		out = append(out, route.AccountID)
	}
	return out
}

func hasAPIRoute(snap *Snapshot) bool {
	for i := range snap.Accounts {
		if a := &snap.Accounts[i]; a.Type == record.AccountAPI && a.IsEnabled() && a.Problem == "" {
			return true
		}
	}
	return false
}

// confirmMainExhausted fetches main's quota after a main 429 and reports
// whether the fresh snapshot shows a 5h or 7d window at 0 % — the only
// evidence besides a fresh cached snapshot that opens API-key routes.
func (e *Engine) confirmMainExhausted(ctx context.Context) bool {
	q, err := e.fetchQuota(ctx, MainAccountID)
	if err != nil {
		e.log.Debug("main quota check after 429 failed", "err", err)
		return false
	}
	return q != nil && policy.StandardExhausted(q)
}

// selectAPIOnly picks an API-key route for a sticky session whose 429 left
// no OAuth account while main is confirmed exhausted.
func (e *Engine) selectAPIOnly(ctx context.Context, snap *Snapshot, route Route, attempted []string) (*Route, error) {
	ex := append([]string{MainAccountID}, attempted...)
	for i := range snap.Accounts {
		if snap.Accounts[i].Type == record.AccountOAuth {
			ex = append(ex, snap.Accounts[i].ID)
		}
	}
	o := newRouteOpts(attempted)
	for _, id := range ex {
		o.exclude[id] = true
	}
	o.includeAPI = true
	o.why = "no OAuth account can take the session and main quota is exhausted"
	return e.selectOrdered(ctx, snap, SelectRequest{SessionID: route.SessionID, Model: route.Model, PromptBytes: route.PromptBytes}, o)
}
