package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
)

// router is the routing state of one engine: the sticky assignments and
// the routes handed out. The files' snapshot is the store's (see
// Store.current).
type router struct {
	sticky stickyCache
	// tickets are the routes handed out, for route/report.
	tickets ticketBook
	// warned holds the file warnings already logged.
	warnMu sync.Mutex
	warned map[string]bool
	// writeMu serializes this process's writers of the routing state file;
	// the lock file serializes processes.
	writeMu sync.Mutex
}

// router returns the engine's routing state.
func (e *Engine) router() *router { return &e.routing }

// routeSnapshot returns the files' snapshot: the one the store's last
// write produced, with the observations made since (BEHAVIOUR.md §1.9),
// read again only when another process changed a file. The snapshot is
// shared: callers must not modify it.
func (e *Engine) routeSnapshot(ctx context.Context) (*Snapshot, error) {
	snap, reloaded, err := e.store.current(ctx)
	if err != nil {
		return nil, err
	}
	if reloaded {
		e.logWarnings(snap)
	}
	return snap, nil
}

// externalRecheck is how long a file version confirmed by stat is trusted
// before the file system is asked again. This process's own writes and
// observations are seen at once (the store publishes the snapshot each
// write produces, and a generation that moved without one means read
// again); another process's writes (a second acctpool, the TypeScript
// plugin) are seen within this window. It keeps stat calls, most of a
// sticky Select's cost, off the hot path.
const externalRecheck = 50 * time.Millisecond

func recentlyChecked(checked, now time.Time) bool {
	d := now.Sub(checked)
	return !checked.IsZero() && d >= 0 && d < externalRecheck
}

// routeOpts carry what a Report learned into the next selection.
type routeOpts struct {
	exclude   map[string]bool
	attempted []string
	// includeAPI is set when a fresh quota check confirmed, after a main
	// 429, that main's quota is exhausted.
	includeAPI bool
	// why prefixes the route's reason ("after main 429").
	why string
}

func newRouteOpts(attempted []string) routeOpts {
	o := routeOpts{exclude: make(map[string]bool, len(attempted)), attempted: attempted}
	for _, id := range attempted {
		o.exclude[id] = true
	}
	return o
}

// Select picks the account that should serve the next model request and
// returns it with its credential. When no account can serve, the error is
// a *NoRouteError that explains every account (reason and until), carries
// the retry-after and the synthetic upstream error a host should return.
//
// The routing mode comes from the config: main-first (default),
// fallback-first, or sticky-balanced for requests with a session id
// (BEHAVIOUR.md §5). Select may refresh tokens and quota
// snapshots that are due; a sticky session whose assignment still holds is
// answered from memory without reading any file.
func (e *Engine) Select(ctx context.Context, req SelectRequest) (*Route, error) {
	r, err := e.selectRoute(ctx, req)
	return e.issued(r), err
}

// selectRoute is Select without the ticket: the one selection Select and
// TrySelect run.
func (e *Engine) selectRoute(ctx context.Context, req SelectRequest) (*Route, error) {
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	o := newRouteOpts(req.Exclude)
	var r *Route
	if e.stickyApplies(snap, req) {
		r, err = e.selectSticky(ctx, snap, req, o)
	} else {
		r, err = e.selectOrdered(ctx, snap, req, o)
	}
	return r, err
}

// stickyApplies reports whether req is routed sticky-balanced: the mode is
// on, the request has a session id and a replayable body, and main has an
// access token (BEHAVIOUR.md §5.4).
func (e *Engine) stickyApplies(snap *Snapshot, req SelectRequest) bool {
	if snap.Settings.Routing != policy.RoutingStickyBalanced || req.SessionID == "" || req.Streamed {
		return false
	}
	c, ok := e.mainCredentials()
	return ok && c.Access != ""
}

// mainFreshExhausted is upstream's "main fresh-exhausted": a fresh main
// snapshot of the current main identity with its 5h or 7d window at 0 %.
// Only this, or a 429 confirmed by a fresh check, opens API-key routes.
func mainFreshExhausted(snap *Snapshot, now time.Time) bool {
	q := mainQuota(snap)
	return q != nil && policy.StandardExhausted(q) && !policy.QuotaStale(q, snap.Settings, "", now)
}

func mainRoute(c MainCredentials) *Route {
	return &Route{AccountID: MainAccountID, Label: "main", Kind: KindMain, Credential: Credential{Type: "bearer", Token: c.Access}}
}

func accountRoute(a *Account) *Route {
	r := &Route{AccountID: a.ID, Label: a.Label}
	if a.Type == record.AccountAPI {
		r.Kind = KindAPI
		r.Credential = Credential{Type: "bearer", Token: a.State.APIKey, BaseURL: strings.TrimRight(strings.TrimSpace(a.BaseURL), "/")}
		if a.AuthHeader == "x-api-key" {
			r.Credential.Type = "x-api-key"
		}
		return r
	}
	r.Kind = KindOAuth
	r.Credential = Credential{Type: "bearer", Token: a.State.Access}
	return r
}

// finish fills the request-specific fields of a route.
func finish(r *Route, req SelectRequest, o routeOpts, reason string) *Route {
	r.SessionID, r.Model, r.PromptBytes = req.SessionID, req.Model, req.PromptBytes
	if len(o.attempted) > 0 {
		r.Attempted = append([]string(nil), o.attempted...)
	}
	if o.why != "" {
		reason = o.why + "; " + reason
	}
	r.Reason = reason
	return r
}

// mainEval is what one selection found out about main.
type mainEval struct {
	j policy.Judgement
	// err is the token refresh failure, when that is why main is out.
	err error
}

// judgeMain judges main for an ordered request, doing the quota check the
// judgement asks for and asking again (BEHAVIOUR.md §5.2). A failed check
// is not fatal: the cached snapshot is judged.
func (e *Engine) judgeMain(ctx context.Context, snap *Snapshot, need policy.Need) (*Snapshot, mainEval) {
	creds, has := e.mainCredentials()
	sub := mainSubject(snap, creds, has)
	j := policy.Judge(snap.Settings, &sub, need, e.now())
	if j.Settle&policy.SettleQuota != 0 {
		_, err := e.fetchQuota(ctx, MainAccountID)
		if err != nil {
			e.log.Debug("main quota check before routing failed", "err", err)
		}
		if fresh, lerr := e.routeSnapshot(ctx); lerr == nil {
			snap = fresh
		}
		sub = mainSubject(snap, creds, has)
		sub.Tried.Quota = failureOf(err)
		j = policy.Judge(snap.Settings, &sub, need, e.now())
	}
	ev := mainEval{j: j}
	if j.Reason == policy.ReasonRefreshBackoff {
		now := e.now()
		ev.err = &BackoffError{Account: MainAccountID, Kind: ErrRefreshBackoff, Record: snap.Main.LastRefreshError, Until: j.Until, Now: now}
	}
	return snap, ev
}

// judgeFallback judges one fallback for an ordered request, refreshing its
// token and polling its quota first when the judgement asks for it, then
// asking again with the outcome (upstream getUsableFallbackAccounts).
func (e *Engine) judgeFallback(ctx context.Context, snap *Snapshot, a *Account, need policy.Need) (*Account, policy.Judgement) {
	s := snap.Settings
	sub := accountSubject(a)
	j := policy.Judge(s, &sub, need, e.now())
	if j.Settle == 0 {
		return a, j
	}
	acct := *a
	if j.Settle&policy.SettleRefresh != 0 {
		fresh, err := e.refreshFallback(ctx, acct.ID, false)
		if err != nil {
			sub.Tried.Refresh = failureOf(err)
			return a, policy.Judge(s, &sub, need, e.now())
		}
		acct = *fresh
		sub = accountSubject(&acct)
		if j = policy.Judge(s, &sub, need, e.now()); j.Settle&policy.SettleQuota == 0 {
			return &acct, j
		}
	}
	q, err := e.fetchQuota(ctx, acct.ID)
	if err != nil {
		sub.Tried.Quota = failureOf(err)
		return &acct, policy.Judge(s, &sub, need, e.now())
	}
	// A usage 401 inside the fetch rotates the tokens: route with the
	// stored ones, not the ones read before the fetch (case 7). The
	// rotation's write published them: no read from disk.
	if fresh, lerr := e.routeSnapshot(ctx); lerr == nil {
		if b, ok := fresh.Account(acct.ID); ok {
			acct = *b
		}
	}
	acct.State.Quota = q
	acct.State.LastQuotaRefreshError = nil
	sub = accountSubject(&acct)
	j = policy.Judge(s, &sub, need, e.now())
	j.Settle = 0
	return &acct, j
}

// shorten cuts a message for display (policy.Shorten).
func shorten(s string, n int) string { return policy.Shorten(s, n) }

// orderedSelection is one main-first or fallback-first selection: what
// it has judged so far and why each account was passed over.
type orderedSelection struct {
	e       *Engine
	snap    *Snapshot
	req     SelectRequest
	o       routeOpts
	need    policy.Need
	reasons []AccountReason
	quotas  map[string]*record.QuotaSnapshot
	main    mainEval
	judged  bool // main has been judged
	// mainLast is set when fallbacks go first (fallback-first mode, or
	// main is the last resort).
	mainLast bool
}

// selectOrdered is the main-first and fallback-first selection: main, then
// the fallbacks in config order (fallbacks first in fallback-first mode, or
// when main quota routing makes main the last resort). A streamed request
// body cannot move, so it goes to main only.
func (e *Engine) selectOrdered(ctx context.Context, snap *Snapshot, req SelectRequest, o routeOpts) (*Route, error) {
	sel := &orderedSelection{e: e, snap: snap, req: req, o: o, quotas: map[string]*record.QuotaSnapshot{},
		need: policy.Need{Purpose: policy.ForOrdered, Model: req.Model, Replayable: !req.Streamed, IncludeAPI: o.includeAPI || mainFreshExhausted(snap, e.now())}}
	switch {
	case req.Streamed:
	case snap.Settings.Routing == policy.RoutingFallbackFirst:
		sel.mainLast = true
	default:
		sel.judgeMain(ctx)
		sel.mainLast = sel.main.j.LastResort
	}
	var r *Route
	if sel.mainLast {
		if r = sel.tryFallbacks(ctx); r == nil {
			r = sel.tryMain(ctx)
		}
	} else if r = sel.tryMain(ctx); r == nil {
		r = sel.tryFallbacks(ctx)
	}
	if r != nil {
		return r, nil
	}
	return nil, e.orderedNoRoute(sel.snap, req, sel.reasons, sel.main, sel.quotas)
}

func (sel *orderedSelection) judgeMain(ctx context.Context) {
	if !sel.judged && !sel.o.exclude[MainAccountID] {
		sel.snap, sel.main = sel.e.judgeMain(ctx, sel.snap, sel.need)
		sel.judged = true
	}
}

func (sel *orderedSelection) skip(id, why string) {
	sel.reasons = append(sel.reasons, AccountReason{AccountID: id, Reason: why})
}

// tryMain routes to main when it is usable and its token can be had.
func (sel *orderedSelection) tryMain(ctx context.Context) *Route {
	if sel.o.exclude[MainAccountID] {
		sel.skip(MainAccountID, "already tried for this request")
		return nil
	}
	sel.judgeMain(ctx)
	sel.quotas[MainAccountID] = mainQuota(sel.snap)
	if !sel.main.j.Usable {
		sel.reasons = append(sel.reasons, reasonOf(MainAccountID, sel.main.j))
		return nil
	}
	c, err := sel.e.ensureMainFresh(ctx, "")
	if err != nil {
		creds, has := sel.e.mainCredentials()
		sub := mainSubject(sel.snap, creds, has)
		sub.Tried.Refresh = failureOf(err)
		sel.main = mainEval{j: policy.Judge(sel.snap.Settings, &sub, sel.need, sel.e.now()), err: err}
		sel.reasons = append(sel.reasons, reasonOf(MainAccountID, sel.main.j))
		return nil
	}
	why := "main-first"
	switch {
	case sel.main.j.LastResort:
		why = "last resort: " + sel.main.j.Text() + " and no fallback can serve"
	case sel.mainLast:
		why = "no fallback can serve"
	}
	return finish(mainRoute(c), sel.req, sel.o, why)
}

// tryFallbacks routes to the first usable fallback in config order.
func (sel *orderedSelection) tryFallbacks(ctx context.Context) *Route {
	_, hasMain := sel.e.mainCredentials()
	for i := range sel.snap.Accounts {
		a := &sel.snap.Accounts[i]
		switch {
		case sel.o.exclude[a.ID]:
			sel.skip(a.ID, "already tried for this request")
			continue
		case !sel.need.Replayable && hasMain:
			sel.skip(a.ID, "request body cannot be replayed; only main is tried")
			continue
		}
		got, j := sel.e.judgeFallback(ctx, sel.snap, a, sel.need)
		sel.quotas[a.ID] = got.State.Quota
		if !j.Usable {
			sel.reasons = append(sel.reasons, reasonOf(a.ID, j))
			continue
		}
		why := "fallback"
		switch {
		case got.Type == record.AccountAPI:
			why = "API-key route: main quota confirmed exhausted"
		case sel.main.j.LastResort:
			why = "fallback: " + sel.main.j.Text()
		case sel.snap.Settings.Routing == policy.RoutingFallbackFirst:
			why = "fallback-first"
		case sel.judged && !sel.main.j.Usable:
			why = "fallback: main " + sel.main.j.Text()
		}
		return finish(accountRoute(got), sel.req, sel.o, why)
	}
	return nil
}

func reasonOf(id string, j policy.Judgement) AccountReason {
	r := AccountReason{AccountID: id, Reason: j.Text()}
	if !j.Until.IsZero() {
		r.Until = epochMs(j.Until)
	}
	return r
}

func errUntil(err error) time.Time {
	var be *BackoffError
	var ue *UpstreamError
	switch {
	case errors.As(err, &be):
		return be.Until
	case errors.As(err, &ue):
		return ue.Until
	}
	return time.Time{}
}

// modelName is the display name of model for messages ("Fable"), found in
// any known scoped window; "" when none matches.
func modelName(snap *Snapshot, model string) string {
	if model == "" {
		return ""
	}
	if sw := policy.ScopedWindowFor(mainQuota(snap), model); sw != nil {
		return sw.ModelName
	}
	for i := range snap.Accounts {
		if sw := policy.ScopedWindowFor(snap.Accounts[i].State.Quota, model); sw != nil {
			return sw.ModelName
		}
	}
	return ""
}

func forModel(name string) string {
	if name == "" {
		return ""
	}
	return " for " + name
}

// reloginLabels lists the enabled OAuth fallbacks whose refresh token was
// rejected for good (upstream getFallbackReauthLabels).
func reloginLabels(snap *Snapshot) []string {
	var out []string
	for i := range snap.Accounts {
		a := &snap.Accounts[i]
		if a.Type == record.AccountOAuth && a.IsEnabled() && policy.NeedsRelogin(a.State.LastRefreshError, a.ID, a.State.Refresh.Fingerprint()) {
			name := a.Label
			if name == "" {
				name = a.ID
			}
			out = append(out, name)
		}
	}
	return out
}

func authNoRoute(msg string, reasons []AccountReason) *NoRouteError {
	return &NoRouteError{NoRoute: NoRoute{Status: 401, ErrorType: "authentication_error", Message: msg, Accounts: reasons}}
}

func rateNoRoute(msg string, retry time.Duration, reasons []AccountReason) *NoRouteError {
	return &NoRouteError{NoRoute: NoRoute{Status: 429, ErrorType: "rate_limit_error", Message: msg, RetryAfterMs: retry.Milliseconds(), Accounts: reasons}}
}

// earliestUntil is the wait until the first listed reason ends, rounded up
// to whole seconds; 300 s when no reason has a known end.
func earliestUntil(reasons []AccountReason, now time.Time) time.Duration {
	var best int64
	for _, r := range reasons {
		if r.Until > epochMs(now) && (best == 0 || r.Until < best) {
			best = r.Until
		}
	}
	if best == 0 {
		return policy.KillswitchDefaultRetry
	}
	return policy.CeilSeconds(fromMs(best).Sub(now))
}

// orderedNoRoute explains a failed main-first or fallback-first selection
// with upstream's synthetic errors.
func (e *Engine) orderedNoRoute(snap *Snapshot, req SelectRequest, reasons []AccountReason, main mainEval, quotas map[string]*record.QuotaSnapshot) error {
	now := e.now()
	s := snap.Settings
	name := forModel(modelName(snap, req.Model))
	switch {
	case main.err != nil:
		return mainRefreshNoRoute(main.err, reasons, now)
	case main.j.Reason == policy.ReasonKillswitch:
		all := make([]*record.QuotaSnapshot, 0, len(quotas))
		for _, q := range quotas {
			all = append(all, q)
		}
		if policy.KillswitchScopedOnly(quotas[MainAccountID], s, MainAccountID, req.Model) {
			retry := policy.KillswitchRetryAfter(all, req.Model, now)
			return rateNoRoute(fmt.Sprintf("%s weekly limit reached, no routable accounts. Retry in %s.", modelName(snap, req.Model), policy.RetryInText(retry)), retry, reasons)
		}
		retry := policy.KillswitchRetryAfter(all, "", now)
		return rateNoRoute(fmt.Sprintf("Killswitch: no routable accounts. Retry in %s.", policy.RetryInText(retry)), retry, reasons)
	case main.j.Reason == policy.ReasonMainQuotaBackedOff:
		rec := snap.Main.LastQuotaAPIError
		retry := 60 * time.Second
		if rec != nil && rec.NextRetryAt > 0 {
			retry = policy.CeilSeconds(fromMs(rec.NextRetryAt).Sub(now))
		}
		be := &BackoffError{Account: MainAccountID, Kind: ErrQuotaBackoff, Record: rec, Until: now.Add(retry), Now: now}
		return rateNoRoute(be.Error(), retry, reasons)
	case main.j.Reason == policy.ReasonNeedsRelogin:
		return authNoRoute("Main Claude OAuth account requires re-login, and no fallback OAuth account is currently routable"+name+".", reasons)
	}
	if labels := reloginLabels(snap); len(labels) > 0 {
		return authNoRoute(fmt.Sprintf("No OAuth account is currently routable%s. Fallback Claude OAuth accounts require re-login: %s.", name, strings.Join(labels, ", ")), reasons)
	}
	if main.j.Reason == policy.ReasonNoCredentials {
		return authNoRoute("Main Claude OAuth credentials are not set, and no fallback account is currently routable"+name+".", reasons)
	}
	retry := earliestUntil(reasons, now)
	return rateNoRoute(fmt.Sprintf("No account is currently routable%s. Retry in %s.", name, policy.RetryInText(retry)), retry, reasons)
}

// mainRefreshNoRoute explains a selection that failed because main's token
// could not be refreshed: the refresh error's own message (upstream fails
// the request with it), as a 429 with retry-after when the failure is
// transient or backed off, else as a 401.
func mainRefreshNoRoute(err error, reasons []AccountReason, now time.Time) *NoRouteError {
	var ue *UpstreamError
	isUpstream := errors.As(err, &ue)
	transient := errors.Is(err, ErrInProgress) ||
		(errors.Is(err, ErrRefreshBackoff) && !errors.Is(err, ErrInvalidGrant)) ||
		(isUpstream && (ue.Verdict.Class == verdict.ClassRateLimited || ue.Verdict.Class == verdict.ClassTransient))
	if !transient {
		nr := authNoRoute(err.Error(), reasons)
		nr.Cause = err
		return nr
	}
	retry := 60 * time.Second
	if until := errUntil(err); until.After(now) {
		retry = policy.CeilSeconds(until.Sub(now))
	} else if isUpstream && ue.Verdict.RetryAfter > 0 {
		retry = ue.Verdict.RetryAfter
	}
	nr := rateNoRoute(err.Error(), retry, reasons)
	nr.Cause = err
	return nr
}
