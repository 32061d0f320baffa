package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
)

// Report takes the outcome of a routed request and decides what the host
// does next: return the response, retry on Next, or hold with a 429 and
// Retry-After. A failure is classified (plugins first) with source
// messages, and its effects come from the one effects table: a 401 on an
// OAuth route refreshes that route's token and retries once on the same
// account; a status in fallbackOn (or a stream that opened with
// rate_limit_error) moves a replayable request to the next routable
// account. Sticky sessions migrate, hold or keep their account as
// upstream-core.md 5.4 says.
//
// Report also harvests the response's rate-limit headers into the
// account's quota, and records lastUsed when a fallback served.
func (e *Engine) Report(ctx context.Context, req ReportRequest) (*ReportResult, error) {
	route := req.Route
	if route.AccountID == "" {
		return nil, errorf(ErrConfigInvalid, "field route.accountId: report needs the route it answers")
	}
	now := e.now()
	h := make(http.Header, len(req.Headers))
	for k, v := range req.Headers {
		h.Set(k, v)
	}
	oauth := route.AccountID == MainAccountID || route.Kind == "oauth"
	if oauth && len(h) > 0 {
		if _, err := e.observeHeaders(ctx, route.AccountID, h, req.Status == 429 || req.StreamRateLimit, !req.Network && req.Status >= 200 && req.Status < 300 && !req.StreamRateLimit); err != nil {
			e.log.Debug("harvest rate-limit headers", "account", route.AccountID, "err", err)
		}
		e.forgetSnapshot()
	}
	if !req.Network && req.Status >= 200 && req.Status < 300 && !req.StreamRateLimit {
		if route.AccountID != MainAccountID {
			e.touchLastUsed(ctx, route.AccountID)
			e.forgetSnapshot()
		}
		return &ReportResult{Action: ActionReturn, Reason: "success"}, nil
	}
	f := Failure{Source: SourceMessages, Status: req.Status, Network: req.Network, Header: h, Body: []byte(req.Body),
		Message: Redact(shorten(req.Body, maxBodyExcerpt), route.Credential.Token), StreamRateLimit: req.StreamRateLimit, At: now}
	v := e.Classify(ctx, f)
	eff := EffectOf(SourceMessages, v)
	res := &ReportResult{Verdict: &v, Action: ActionReturn}
	if !req.Replayable {
		res.Reason = "request body cannot be replayed; response returned"
		return res, nil
	}
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	if route.Sticky != nil && route.SessionID != "" && snap.Settings.Routing == RoutingStickyBalanced {
		return e.reportSticky(ctx, snap, route, f, v, eff, res)
	}
	return e.reportOrdered(ctx, snap, route, f, v, eff, res)
}

// moves reports whether a failed response moves a replayable request to
// another account: its status is in fallbackOn (or the stream opened with
// rate_limit_error) and the effects row says so. A status the user added
// to fallbackOn beyond the defaults always moves: that is what they asked
// for (upstream moves on any listed status).
func moves(s Settings, f Failure, eff Effect) bool {
	listed := slices.Contains(s.FallbackOn, f.Status)
	if !listed && !f.StreamRateLimit {
		return false
	}
	return eff.Fallback || (listed && !slices.Contains(DefaultFallbackOn, f.Status))
}

func statusText(f Failure) string {
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
		e.forgetSnapshot()
		if err != nil {
			return nil, err
		}
		next = accountRoute(a)
	}
	next.SessionID, next.Model, next.PromptBytes, next.Sticky = route.SessionID, route.Model, route.PromptBytes, route.Sticky
	next.Attempted = route.Attempted
	next.AuthRetried = true
	next.Reason = "401: token refreshed, retrying on the same account"
	return next, nil
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
		if a := &snap.Accounts[i]; a.Type == AccountAPI && a.IsEnabled() && a.Problem == "" {
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
	e.forgetSnapshot()
	if err != nil {
		e.log.Debug("main quota check after 429 failed", "err", err)
		return false
	}
	return q != nil && standardExhausted(q)
}

func (e *Engine) reportOrdered(ctx context.Context, snap *Snapshot, route Route, f Failure, v Verdict, eff Effect, res *ReportResult) (*ReportResult, error) {
	oauth := route.AccountID == MainAccountID || route.Kind == "oauth"
	canRefresh := eff.RefreshAndRetry && oauth && !route.AuthRetried
	// refreshHere is the 401 answer when no other account takes the
	// request: refresh this route's token and retry once on it.
	refreshHere := func(note string) (*ReportResult, bool) {
		next, err := e.refreshRoute(ctx, route)
		if err != nil {
			res.Reason = fmt.Sprintf("%s is %s%s; token refresh failed: %s: response returned", statusText(f), v.Class, note, shorten(err.Error(), 200))
			return res, false
		}
		res.Action, res.Next, res.Reason = ActionRetry, next, next.Reason
		return res, true
	}
	if !moves(snap.Settings, f, eff) {
		if canRefresh {
			out, _ := refreshHere("")
			return out, nil
		}
		res.Reason = fmt.Sprintf("%s is %s: response returned", statusText(f), v.Class)
		return res, nil
	}
	// Upstream's ordered modes move a request in fallbackOn to the next
	// account first (a 401 such as "OAuth not allowed for this
	// organization" is not cured by a refresh); only when no account can
	// take it is the route's own token refreshed and the request retried.
	attempted := attemptedAfter(route)
	o := newRouteOpts(attempted)
	o.why = fmt.Sprintf("after %s %s", route.AccountID, statusText(f))
	if route.AccountID == MainAccountID && v.Class == ClassRateLimited && hasAPIRoute(snap) && !mainFreshExhausted(snap, e.now()) {
		o.includeAPI = e.confirmMainExhausted(ctx)
	}
	if fresh, err := e.routeSnapshot(ctx); err == nil {
		snap = fresh
	}
	next, err := e.selectOrdered(ctx, snap, SelectRequest{SessionID: route.SessionID, Model: route.Model, PromptBytes: route.PromptBytes, Exclude: attempted}, o)
	if err != nil && canRefresh && errors.Is(err, ErrNoRoute) {
		if out, ok := refreshHere(" and no other account can serve"); ok {
			return out, nil
		}
		var nr *NoRouteError
		if errors.As(err, &nr) {
			res.NoRoute = &nr.NoRoute
		}
		return res, nil
	}
	return e.nextOrReturn(res, next, err, f, v, "")
}

// nextOrReturn turns a selection of the next route into the result: retry
// there, or return the failing response with the explanation.
func (e *Engine) nextOrReturn(res *ReportResult, next *Route, err error, f Failure, v Verdict, note string) (*ReportResult, error) {
	if err == nil {
		res.Action, res.Next, res.Reason = ActionRetry, next, next.Reason
		return res, nil
	}
	var nr *NoRouteError
	if !errors.As(err, &nr) {
		return nil, err
	}
	res.NoRoute = &nr.NoRoute
	res.Reason = fmt.Sprintf("%s is %s and no other account can serve: response returned%s", statusText(f), v.Class, note)
	return res, nil
}

func (e *Engine) reportSticky(ctx context.Context, snap *Snapshot, route Route, f Failure, v Verdict, eff Effect, res *ReportResult) (*ReportResult, error) {
	key := sessionKey(route.SessionID)
	oauth := route.AccountID == MainAccountID || route.Kind == "oauth"
	migrate := ""
	switch {
	case eff.RefreshAndRetry && oauth && !route.AuthRetried:
		next, err := e.refreshRoute(ctx, route)
		switch {
		case err == nil:
			res.Action, res.Next, res.Reason = ActionRetry, next, next.Reason
			return res, nil
		case errors.Is(err, ErrInvalidGrant):
			migrate = "401 and the refresh token needs a re-login"
		default:
			res.Reason = "401 and token refresh failed; affinity kept: " + shorten(err.Error(), 200)
			return res, nil
		}
	case eff.RefreshAndRetry && oauth:
		migrate = "second 401 after a token refresh"
	case !moves(snap.Settings, f, eff):
		res.Reason = fmt.Sprintf("%s is %s: affinity kept, response returned", statusText(f), v.Class)
		return res, nil
	case v.Class == ClassRateLimited:
		q, err := e.fetchQuota(ctx, route.AccountID)
		e.forgetSnapshot()
		if err != nil {
			res.Reason = "rate limited; quota check failed, so affinity kept: " + shorten(err.Error(), 200)
			return res, nil
		}
		now := e.now()
		d := stickyDecision(q, route.Model, now)
		switch {
		case d.Hold:
			nr := stickyHoldNoRoute(key, route.AccountID, d, now)
			res.Action, res.RetryAfterMs, res.NoRoute = ActionHold, nr.NoRoute.RetryAfterMs, &nr.NoRoute
			res.Reason = "rate limited; " + d.Text() + ": holding the session on its account"
			return res, nil
		case d.Usable:
			res.Reason = "rate limited but quota not exhausted: affinity kept, response returned"
			return res, nil
		}
		migrate = "rate limited: " + d.Text()
	default:
		migrate = fmt.Sprintf("%s is %s", statusText(f), v.Class)
	}
	attempted := attemptedAfter(route)
	o := newRouteOpts(attempted)
	o.why = "migrated after " + route.AccountID + " " + migrate
	next, err := e.stickySlow(ctx, SelectRequest{SessionID: route.SessionID, Model: route.Model, PromptBytes: route.PromptBytes}, o, key)
	if err != nil && v.Class == ClassRateLimited {
		var nr *NoRouteError
		if fresh, serr := e.routeSnapshot(ctx); errors.As(err, &nr) && serr == nil && mainFreshExhausted(fresh, e.now()) && hasAPIRoute(fresh) {
			if api, aerr := e.selectAPIOnly(ctx, fresh, route, attempted); aerr == nil {
				next, err = api, nil
			}
		}
	}
	return e.nextOrReturn(res, next, err, f, v, "")
}

// selectAPIOnly picks an API-key route for a sticky session whose 429 left
// no OAuth account while main is confirmed exhausted.
func (e *Engine) selectAPIOnly(ctx context.Context, snap *Snapshot, route Route, attempted []string) (*Route, error) {
	ex := append([]string{MainAccountID}, attempted...)
	for i := range snap.Accounts {
		if snap.Accounts[i].Type == AccountOAuth {
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
