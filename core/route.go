package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// router is the routing state of one engine: a snapshot of the files that
// is reused while they are unchanged on disk, and the sticky assignments.
type router struct {
	snapMu sync.Mutex
	snap   *Snapshot
	cfgFI  fileStamp
	stFI   fileStamp
	// gen and checked say when the cached snapshot was last confirmed:
	// the store's write count and the wall time of the stat.
	gen     uint64
	checked time.Time

	sticky stickyCache
	// writeMu serializes this process's writers of the routing state file;
	// the lock file serializes processes.
	writeMu sync.Mutex
}

// router returns the engine's routing state.
func (e *Engine) router() *router { return &e.routing }

// routeSnapshot returns the files' snapshot, read again only when a file
// changed on disk since the last read. The snapshot is shared: callers
// must not modify it.
func (e *Engine) routeSnapshot(ctx context.Context) (*Snapshot, error) {
	r := e.router()
	p := e.store.Paths()
	gen, wall := e.store.generation(), e.store.wallNow()
	r.snapMu.Lock()
	if r.snap != nil && r.gen == gen && recentlyChecked(r.checked, wall) {
		snap := r.snap
		r.snapMu.Unlock()
		return snap, nil
	}
	r.snapMu.Unlock()
	cfi, err := stampOf(p.Config)
	if err != nil {
		return nil, err
	}
	sfi, err := stampOf(p.State)
	if err != nil {
		return nil, err
	}
	r.snapMu.Lock()
	if r.snap != nil && r.cfgFI.same(cfi) && r.stFI.same(sfi) {
		snap := r.snap
		r.gen, r.checked = gen, wall
		r.snapMu.Unlock()
		return snap, nil
	}
	r.snapMu.Unlock()
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	r.snapMu.Lock()
	r.snap, r.cfgFI, r.stFI, r.gen, r.checked = snap, cfi, sfi, gen, wall
	r.snapMu.Unlock()
	return snap, nil
}

// externalRecheck is how long a file version confirmed by stat is trusted
// before the file system is asked again. This process's own writes are
// seen at once (the store's write count, forgetSnapshot); another
// process's writes (a second acctpool, the TypeScript plugin) are seen
// within this window. It keeps stat calls, most of a sticky Select's
// cost, off the hot path.
const externalRecheck = 50 * time.Millisecond

func recentlyChecked(checked, now time.Time) bool {
	d := now.Sub(checked)
	return !checked.IsZero() && d >= 0 && d < externalRecheck
}

// forgetSnapshot drops the cached snapshot after this engine wrote the
// files, so the next read cannot miss the write.
func (e *Engine) forgetSnapshot() {
	r := e.router()
	r.snapMu.Lock()
	r.snap = nil
	r.snapMu.Unlock()
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
// (upstream-core.md section 5). Select may refresh tokens and quota
// snapshots that are due; a sticky session whose assignment still holds is
// answered from memory without reading any file.
func (e *Engine) Select(ctx context.Context, req SelectRequest) (*Route, error) {
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	o := newRouteOpts(req.Exclude)
	if e.stickyApplies(snap, req) {
		return e.selectSticky(ctx, snap, req, o)
	}
	return e.selectOrdered(ctx, snap, req, o)
}

// stickyApplies reports whether req is routed sticky-balanced: the mode is
// on, the request has a session id and a replayable body, and main has an
// access token (upstream-core.md 5.4).
func (e *Engine) stickyApplies(snap *Snapshot, req SelectRequest) bool {
	if snap.Settings.Routing != RoutingStickyBalanced || req.SessionID == "" || req.Streamed {
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
	return q != nil && standardExhausted(q) && !QuotaStale(q, snap.Settings, "", now)
}

func standardExhausted(q *QuotaSnapshot) bool {
	return (q.FiveHour != nil && q.FiveHour.RemainingPercent <= 0) || (q.SevenDay != nil && q.SevenDay.RemainingPercent <= 0)
}

func mainRoute(c MainCredentials) *Route {
	return &Route{AccountID: MainAccountID, Label: "main", Kind: "main", Credential: Credential{Type: "bearer", Token: c.Access}}
}

func accountRoute(a *Account) *Route {
	r := &Route{AccountID: a.ID, Label: a.Label}
	if a.Type == AccountAPI {
		r.Kind = "api"
		r.Credential = Credential{Type: "bearer", Token: a.State.APIKey, BaseURL: strings.TrimRight(strings.TrimSpace(a.BaseURL), "/")}
		if a.AuthHeader == "x-api-key" {
			r.Credential.Type = "x-api-key"
		}
		return r
	}
	r.Kind = "oauth"
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
	u Usability
	// demote is set when main quota routing found main's snapshot below
	// policy: fallbacks go first and main is the last resort.
	demote string
	err    error // the token refresh failure, when that is why main is out
}

// evalMain judges main for an ordered selection, fetching its quota when
// main quota routing or the killswitch needs a current snapshot. Quota
// fetch errors are not fatal: the cached snapshot is judged instead.
func (e *Engine) evalMain(ctx context.Context, snap *Snapshot, model string, replayable bool) (*Snapshot, mainEval) {
	now := e.now()
	s := snap.Settings
	creds, ok := e.mainCredentials()
	if !ok {
		return snap, mainEval{u: Usability{Reason: ReasonNoMain}}
	}
	id := mainIdentity(snap)
	fp := creds.Refresh.Fingerprint()
	if refreshPermanent(snap.Main.LastRefreshError, id, fp) {
		return snap, mainEval{u: Usability{Reason: ReasonNeedsRelogin}}
	}
	if expired(creds.Access, creds.Expires, now) {
		if until, ok := refreshBackoffUntil(snap.Main.LastRefreshError, id, now, fp); ok {
			return snap, mainEval{u: Usability{Reason: ReasonRefreshBackoff, Until: until},
				err: &BackoffError{Account: MainAccountID, Kind: ErrRefreshBackoff, Record: snap.Main.LastRefreshError, Until: until, Now: now}}
		}
	}
	q := mainQuota(snap)
	routing := s.QuotaRouting && replayable
	fetch := s.Killswitch.Enabled && QuotaStale(q, s, model, now)
	if routing && (q == nil || (QuotaStale(q, s, model, now) && (standardExhausted(q) || ModelScopeExhausted(q, model)))) {
		fetch = true
	}
	if fetch && !QuotaBackoffActive(snap.Main.LastQuotaAPIError, now) {
		if _, err := e.fetchQuota(ctx, MainAccountID); err != nil {
			e.log.Debug("main quota check before routing failed", "err", err)
		}
		e.forgetSnapshot()
		if fresh, err := e.routeSnapshot(ctx); err == nil {
			snap = fresh
		}
		q = mainQuota(snap)
		now = e.now()
	}
	qerr := snap.Main.LastQuotaAPIError
	if q == nil && s.FailClosedOnUnknown && QuotaBackoffActive(qerr, now) {
		return snap, mainEval{u: Usability{Reason: ReasonMainQuotaOff, Until: fromMs(qerr.NextRetryAt)}}
	}
	if r, until, ok := killswitchFailure(q, s, MainAccountID, model, now); !ok {
		if until.IsZero() && QuotaBackoffActive(qerr, now) {
			until = fromMs(qerr.NextRetryAt)
		}
		return snap, mainEval{u: Usability{Reason: r, Until: until}}
	}
	ev := mainEval{u: Usability{OK: true}}
	if routing {
		if r, _, ok := policyFailure(q, s, now); !ok {
			ev.demote = "main " + r
		} else if ModelScopeExhausted(q, model) {
			ev.demote = "main " + scopedWindowFor(q, model).ModelName + " weekly limit reached"
		}
	}
	return snap, ev
}

// evalFallback judges one fallback for a request, refreshing its token and
// its quota first when they are due (upstream getUsableFallbackAccounts).
func (e *Engine) evalFallback(ctx context.Context, snap *Snapshot, a *Account, model string, includeAPI bool) (*Account, Usability) {
	now := e.now()
	s := snap.Settings
	if a.Type == AccountAPI {
		u := AccountUsability(snap, a, model, now)
		if u.OK && !includeAPI {
			return a, Usability{Reason: "API-key route: main quota not confirmed exhausted"}
		}
		return a, u
	}
	if a.Problem != "" || !a.IsEnabled() || refreshPermanent(a.State.LastRefreshError, a.ID, a.State.Refresh.Fingerprint()) {
		return a, AccountUsability(snap, a, model, now)
	}
	acct := *a
	if needsRefresh(acct.State.Access, acct.State.Expires, s.RefreshBeforeExpiry, now) {
		if until, ok := refreshBackoffUntil(acct.State.LastRefreshError, acct.ID, now, acct.State.Refresh.Fingerprint()); ok {
			return a, Usability{Reason: ReasonRefreshBackoff, Until: until}
		}
		fresh, err := e.refreshFallback(ctx, acct.ID, false)
		e.forgetSnapshot()
		if err != nil {
			return a, e.fallbackFailure(snap, &acct, err, model)
		}
		acct = *fresh
	}
	if (s.QuotaEnabled || s.Killswitch.Enabled) && QuotaStale(acct.State.Quota, s, model, now) &&
		!QuotaBackoffActive(acct.State.LastQuotaRefreshError, now) {
		q, err := e.fetchQuota(ctx, acct.ID)
		e.forgetSnapshot()
		if err != nil {
			return &acct, e.fallbackFailure(snap, &acct, err, model)
		}
		// A usage 401 inside the fetch rotates the tokens: route with the
		// stored ones, not the ones read before the fetch (case 7).
		if fresh, lerr := e.store.Load(ctx); lerr == nil {
			if b, ok := fresh.Account(acct.ID); ok {
				acct = *b
			}
		}
		acct.State.Quota = q
		acct.State.LastQuotaRefreshError = nil
	}
	return &acct, quotaUsability(s, acct.State.Quota, acct.State.LastQuotaRefreshError, acct.ID, model, e.now(), s.QuotaEnabled)
}

// fallbackFailure decides whether an account whose token refresh or quota
// check just failed may still serve (upstream's failure path): its cached
// quota is trusted after a transient quota failure if the token is valid
// and the cached windows still apply; with failClosedOnUnknownQuota off it
// serves unless refresh backoff or model scope says otherwise.
func (e *Engine) fallbackFailure(snap *Snapshot, a *Account, err error, model string) Usability {
	now := e.now()
	s := snap.Settings
	q := a.State.Quota
	if !expired(a.State.Access, a.State.Expires, now) && transientQuotaError(err) && QuotaPassesPolicy(q, s) && windowsCurrent(q, now) {
		return quotaUsability(s, q, nil, a.ID, model, now, false)
	}
	// Fail-open is for unknown quota: a cached snapshot that is known to
	// fail the thresholds still excludes the account (case 15).
	if !s.FailClosedOnUnknown && QuotaPassesPolicy(q, s) && !RefreshBackoffActive(a.State.LastRefreshError, a.ID, now, a.State.Refresh.Fingerprint()) && !ModelScopeExhausted(q, model) {
		if r, until, ok := killswitchFailure(q, s, a.ID, model, now); !ok {
			return Usability{Reason: r, Until: until}
		}
		return Usability{OK: true}
	}
	u := Usability{Reason: shorten(err.Error(), 240)}
	var be *BackoffError
	var ue *UpstreamError
	switch {
	case errors.As(err, &be):
		u.Until = be.Until
	case errors.As(err, &ue):
		u.Until = ue.Until
	}
	return u
}

// transientQuotaError reports whether err is a usage-endpoint failure
// that says nothing about the account (rate limit, 5xx, network, a
// concurrent check).
func transientQuotaError(err error) bool {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.Failure.Source == SourceUsage && (ue.Verdict.Class == ClassRateLimited || ue.Verdict.Class == ClassTransient)
	}
	var be *BackoffError
	if errors.As(err, &be) {
		return be.Kind == ErrQuotaBackoff
	}
	return errors.Is(err, ErrInProgress)
}

// windowsCurrent reports whether the cached 5h and 7d windows have not
// reset yet (no reset known counts as current).
func windowsCurrent(q *QuotaSnapshot, now time.Time) bool {
	if q == nil {
		return false
	}
	for _, w := range []*QuotaWindow{q.FiveHour, q.SevenDay} {
		if w == nil {
			continue
		}
		if t, ok := parseReset(w.ResetsAt); ok && !t.After(now) {
			return false
		}
	}
	return true
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// selectOrdered is the main-first and fallback-first selection: main, then
// the fallbacks in config order (fallbacks first in fallback-first mode, or
// when main quota routing finds main below policy). A streamed request
// body cannot move, so it goes to main only.
func (e *Engine) selectOrdered(ctx context.Context, snap *Snapshot, req SelectRequest, o routeOpts) (*Route, error) {
	s := snap.Settings
	replayable := !req.Streamed
	_, hasMain := e.mainCredentials()
	includeAPI := o.includeAPI || mainFreshExhausted(snap, e.now())
	var (
		reasons   []AccountReason
		main      mainEval
		mainDone  bool
		quotas    = map[string]*QuotaSnapshot{}
		fallbacks = replayable || !hasMain
	)
	evaluate := func() {
		if !mainDone && !o.exclude[MainAccountID] {
			snap, main = e.evalMain(ctx, snap, req.Model, replayable)
			mainDone = true
		}
	}
	mainLast := false
	switch {
	case !replayable:
	case s.Routing == RoutingFallbackFirst:
		mainLast = true
	default:
		evaluate()
		mainLast = main.demote != ""
	}
	tryMain := func() *Route {
		if o.exclude[MainAccountID] {
			reasons = append(reasons, AccountReason{AccountID: MainAccountID, Reason: "already tried for this request"})
			return nil
		}
		evaluate()
		quotas[MainAccountID] = mainQuota(snap)
		if !main.u.OK {
			reasons = append(reasons, reasonOf(MainAccountID, main.u))
			return nil
		}
		c, err := e.ensureMainFresh(ctx, "")
		if err != nil {
			main.err = err
			main.u = Usability{Reason: shorten(err.Error(), 240), Until: errUntil(err)}
			reasons = append(reasons, reasonOf(MainAccountID, main.u))
			return nil
		}
		why := "main-first"
		switch {
		case main.demote != "":
			why = "last resort: " + main.demote + " and no fallback can serve"
		case mainLast:
			why = "no fallback can serve"
		}
		return finish(mainRoute(c), req, o, why)
	}
	tryFallbacks := func() *Route {
		for i := range snap.Accounts {
			a := &snap.Accounts[i]
			if o.exclude[a.ID] {
				reasons = append(reasons, AccountReason{AccountID: a.ID, Reason: "already tried for this request"})
				continue
			}
			if !fallbacks {
				reasons = append(reasons, AccountReason{AccountID: a.ID, Reason: "request body cannot be replayed; only main is tried"})
				continue
			}
			got, u := e.evalFallback(ctx, snap, a, req.Model, includeAPI)
			quotas[a.ID] = got.State.Quota
			if !u.OK {
				reasons = append(reasons, reasonOf(a.ID, u))
				continue
			}
			why := "fallback"
			switch {
			case got.Type == AccountAPI:
				why = "API-key route: main quota confirmed exhausted"
			case main.demote != "":
				why = "fallback: " + main.demote
			case s.Routing == RoutingFallbackFirst:
				why = "fallback-first"
			case mainDone && !main.u.OK:
				why = "fallback: main " + main.u.Reason
			}
			if got.Type == AccountOAuth {
				e.log.Debug("route", "account", got.ID, "why", why)
			}
			return finish(accountRoute(got), req, o, why)
		}
		return nil
	}
	var r *Route
	if mainLast {
		if r = tryFallbacks(); r == nil {
			r = tryMain()
		}
	} else {
		if r = tryMain(); r == nil {
			r = tryFallbacks()
		}
	}
	if r != nil {
		return r, nil
	}
	return nil, e.orderedNoRoute(snap, req, reasons, main, quotas)
}

func reasonOf(id string, u Usability) AccountReason {
	r := AccountReason{AccountID: id, Reason: u.Reason}
	if !u.Until.IsZero() {
		r.Until = epochMs(u.Until)
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
	if sw := scopedWindowFor(mainQuota(snap), model); sw != nil {
		return sw.ModelName
	}
	for i := range snap.Accounts {
		if sw := scopedWindowFor(snap.Accounts[i].State.Quota, model); sw != nil {
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
		if a.Type == AccountOAuth && a.IsEnabled() && refreshPermanent(a.State.LastRefreshError, a.ID, a.State.Refresh.Fingerprint()) {
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
		return killswitchDefaultRetry
	}
	return ceilSeconds(fromMs(best).Sub(now))
}

// orderedNoRoute explains a failed main-first or fallback-first selection
// with upstream's synthetic errors.
func (e *Engine) orderedNoRoute(snap *Snapshot, req SelectRequest, reasons []AccountReason, main mainEval, quotas map[string]*QuotaSnapshot) error {
	now := e.now()
	s := snap.Settings
	name := forModel(modelName(snap, req.Model))
	switch {
	case main.err != nil:
		return mainRefreshNoRoute(main.err, reasons, now)
	case strings.HasPrefix(main.u.Reason, "killswitch"):
		all := make([]*QuotaSnapshot, 0, len(quotas))
		for _, q := range quotas {
			all = append(all, q)
		}
		if killswitchScopedOnly(quotas[MainAccountID], s, MainAccountID, req.Model) {
			retry := KillswitchRetryAfter(all, req.Model, now)
			return rateNoRoute(fmt.Sprintf("%s weekly limit reached, no routable accounts. Retry in %s.", modelName(snap, req.Model), retryInText(retry)), retry, reasons)
		}
		retry := KillswitchRetryAfter(all, "", now)
		return rateNoRoute(fmt.Sprintf("Killswitch: no routable accounts. Retry in %s.", retryInText(retry)), retry, reasons)
	case main.u.Reason == ReasonMainQuotaOff:
		rec := snap.Main.LastQuotaAPIError
		retry := 60 * time.Second
		if rec != nil && rec.NextRetryAt > 0 {
			retry = ceilSeconds(fromMs(rec.NextRetryAt).Sub(now))
		}
		be := &BackoffError{Account: MainAccountID, Kind: ErrQuotaBackoff, Record: rec, Until: now.Add(retry), Now: now}
		return rateNoRoute(be.Error(), retry, reasons)
	case main.u.Reason == ReasonNeedsRelogin:
		return authNoRoute("Main Claude OAuth account requires re-login, and no fallback OAuth account is currently routable"+name+".", reasons)
	}
	if labels := reloginLabels(snap); len(labels) > 0 {
		return authNoRoute(fmt.Sprintf("No OAuth account is currently routable%s. Fallback Claude OAuth accounts require re-login: %s.", name, strings.Join(labels, ", ")), reasons)
	}
	if main.u.Reason == ReasonNoMain {
		return authNoRoute("Main Claude OAuth credentials are not set, and no fallback account is currently routable"+name+".", reasons)
	}
	retry := earliestUntil(reasons, now)
	return rateNoRoute(fmt.Sprintf("No account is currently routable%s. Retry in %s.", name, retryInText(retry)), retry, reasons)
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
		(isUpstream && (ue.Verdict.Class == ClassRateLimited || ue.Verdict.Class == ClassTransient))
	if !transient {
		nr := authNoRoute(err.Error(), reasons)
		nr.Cause = err
		return nr
	}
	retry := 60 * time.Second
	if until := errUntil(err); until.After(now) {
		retry = ceilSeconds(until.Sub(now))
	} else if isUpstream && ue.Verdict.RetryAfter > 0 {
		retry = ue.Verdict.RetryAfter
	}
	nr := rateNoRoute(err.Error(), retry, reasons)
	nr.Cause = err
	return nr
}
