package core

import (
	"errors"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// This file is the one answer to "can this account serve this request, and
// if not, why and until when?" (BEHAVIOUR.md §5.1). judge is pure: it reads
// settings, the account's stored data, the request and the time. When the
// answer depends on I/O (a token refresh, a usage poll) it says so in
// Settle; the engine does that I/O and asks again with the outcome in
// subject.Tried. Views, ordered routing, sticky routing, NoRoute messages
// and the killswitch all read the same judgement.

// RouteKind is the kind of an account: the host's main account, an OAuth
// fallback, an API-key route, or an entry of a type acctpool does not know
// (listed, never routed). The server derives it from the snapshot by id; a
// kind a host echoes back is never trusted.
type RouteKind uint8

// The route kinds.
const (
	KindUnknown RouteKind = iota
	KindMain
	KindOAuth
	KindAPI
)

// String is the kind as the wire spells it.
func (k RouteKind) String() string {
	switch k {
	case KindMain:
		return "main"
	case KindOAuth:
		return "oauth"
	case KindAPI:
		return "api"
	}
	return "unknown"
}

// MarshalText writes the kind as "main", "oauth", "api" or "unknown".
func (k RouteKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a kind; anything unknown is KindUnknown. The server
// never decides on a kind it read, so this only keeps echoed routes
// decodable.
func (k *RouteKind) UnmarshalText(b []byte) error {
	switch string(b) {
	case "main":
		*k = KindMain
	case "oauth":
		*k = KindOAuth
	case "api":
		*k = KindAPI
	default:
		*k = KindUnknown
	}
	return nil
}

// settleIO is the I/O that would settle a judgement.
type settleIO uint8

// The I/O a judgement can ask for.
const (
	// settleRefresh: the access token is due; refresh it before use.
	settleRefresh settleIO = 1 << iota
	// settleQuota: the quota snapshot is stale; poll usage, then judge again.
	settleQuota
)

// purpose is what a judgement is for: the same facts weigh differently
// when listing an account, routing an ordered request, keeping a sticky
// session on its account, or giving an account a new session.
type purpose uint8

// The purposes of a judgement.
const (
	// forView judges stored data for accounts/list and accounts/get.
	forView purpose = iota
	// forOrdered routes main-first and fallback-first requests.
	forOrdered
	// forStickyKeep decides whether a session keeps its account.
	forStickyKeep
	// forStickyNew decides whether an account may take a new session.
	forStickyNew
)

// need is the request a judgement is about.
type need struct {
	Purpose purpose
	// Model is the request's model id, for model-scoped windows.
	Model string
	// Replayable is true when the request may move to another account;
	// main's quota routing only applies then.
	Replayable bool
	// IncludeAPI is set when main's OAuth quota is confirmed spent, which
	// opens API-key routes.
	IncludeAPI bool
}

// subject is one account's stored data as the judgement needs it; main is
// an account whose credential comes from the host.
type subject struct {
	ID   string
	Kind RouteKind
	// Order is the fallback's position (1 = first); 0 for main.
	Order   int
	Problem string
	Enabled bool
	// Identity binds refresh errors: the account id, or mainAccountId.
	Identity string
	// HasCredential is false when main's tokens were never handed over.
	HasCredential bool
	Access        secret.Secret
	Refresh       secret.Secret
	Expires       int64
	RefreshError  *record.OpError
	Quota         *record.QuotaSnapshot
	QuotaError    *record.OpError
	// Spent is what the last 429 said about the windows.
	Spent *record.SpentWindows
	// Tried is what this request's I/O found.
	Tried tried
}

// tried is the outcome of the I/O the engine did for one judgement.
type tried struct {
	// Refresh is the error of the token refresh this request made.
	Refresh error
	// Quota is the error of the usage poll this request made.
	Quota error
}

// judgement is the answer: usable or not, the reason, until when, and what
// I/O would settle it.
type judgement struct {
	Usable bool
	Reason policy.Reason
	// Until is when the reason ends; zero when unknown or never.
	Until time.Time
	// Settle is the I/O to do before the account is used or judged again.
	Settle settleIO
	// LastResort marks main usable below its quota policy: in ordered
	// modes fallbacks go first and main serves only when none can.
	LastResort bool
	// Hold marks a sticky session that keeps its account but waits until
	// Until (policy.ReasonResetsShortly).
	Hold bool
	// detail is the display text when it says more than the reason.
	detail string
}

// Text is the judgement for display: the reason with its particulars
// ("5h quota below minimum (3% < 10%)").
func (j judgement) Text() string {
	if j.detail != "" {
		return j.detail
	}
	return j.Reason.String()
}

func refuse(r policy.Reason, until time.Time, detail string) judgement {
	return judgement{Reason: r, Until: until, detail: detail}
}

// judge answers whether the account a can serve the request n at now
// under settings s (BEHAVIOUR.md §5.1). It does no I/O: when a token
// refresh or a usage poll would change the answer it returns the current
// answer with Settle set, and the engine asks again after the I/O with
// a.Tried filled in.
func judge(s policy.Settings, a *subject, n need, now time.Time) judgement {
	if j, done := judgeEntry(a, n); done {
		return j
	}
	if a.Kind == KindAPI {
		return judgeAPI(n)
	}
	if j, done := judgeToken(s, a, n, now); done {
		return j
	}
	if j, done := judgeSpent(a.Spent, n, now); done {
		return j
	}
	settle := settleIO(0)
	if tokenDue(s, a, now) && a.Tried.Refresh == nil {
		settle = settleRefresh
	}
	var j judgement
	switch {
	case n.Purpose == forStickyKeep:
		j = judgeStickyKeep(s, a, n, now)
	case n.Purpose == forStickyNew:
		j = judgeStickyNew(s, a, n, now)
	case a.Kind == KindMain:
		j = judgeMainQuota(s, a, n, now)
	default:
		j = judgeFallbackQuota(s, a, n, now)
	}
	j.Settle |= settle
	return j
}

// judgeEntry refuses an account for what it is: a broken entry, disabled,
// without credentials, or not part of sticky routing.
func judgeEntry(a *subject, n need) (judgement, bool) {
	sticky := n.Purpose == forStickyKeep || n.Purpose == forStickyNew
	switch {
	case a.Kind == KindUnknown || a.Problem != "":
		return refuse(policy.ReasonEntryProblem, time.Time{}, a.Problem), true
	case !a.Enabled:
		return refuse(policy.ReasonDisabled, time.Time{}, ""), true
	case a.Kind == KindAPI && sticky:
		return refuse(policy.ReasonNotSticky, time.Time{}, ""), true
	case a.Kind == KindMain && !a.HasCredential:
		return refuse(policy.ReasonNoCredentials, time.Time{}, "main credentials not set"), true
	case a.Kind == KindOAuth && sticky && a.Access == "":
		return refuse(policy.ReasonNoCredentials, time.Time{}, "no access token"), true
	}
	return judgement{}, false
}

// judgeAPI is an API-key route: usable when complete and enabled, but
// routed only when main's OAuth quota is confirmed spent.
func judgeAPI(n need) judgement {
	if n.Purpose == forOrdered && !n.IncludeAPI {
		return refuse(policy.ReasonAPIReserved, time.Time{}, "")
	}
	return judgement{Usable: true, detail: "API-key route (used only when main quota is confirmed exhausted)"}
}

// tokenDue reports whether the account's access token must be refreshed
// before use: main when it is expired (the host refreshes it early),
// fallbacks within the refresh window (BEHAVIOUR.md §2.3).
func tokenDue(s policy.Settings, a *subject, now time.Time) bool {
	if a.Kind == KindMain {
		return expired(a.Access, a.Expires, now)
	}
	return needsRefresh(a.Access, a.Expires, s.RefreshBeforeExpiry, now)
}

// judgeToken refuses an account whose token cannot be had: a refresh token
// rejected for good, an active refresh backoff while the token is due (for
// sticky main, whenever it is active), or a refresh that just failed.
func judgeToken(s policy.Settings, a *subject, n need, now time.Time) (judgement, bool) {
	rec := a.RefreshError
	fp := policy.FingerprintFor(rec, a.Refresh)
	if needsRelogin(rec, a.Identity, fp) {
		return refuse(policy.ReasonNeedsRelogin, time.Time{}, ""), true
	}
	due := tokenDue(s, a, now)
	sticky := n.Purpose == forStickyKeep || n.Purpose == forStickyNew
	if due || (sticky && a.Kind == KindMain) {
		if until, ok := policy.RefreshBackoffUntil(rec, a.Identity, now, fp); ok {
			return refuse(policy.ReasonRefreshBackoff, until, ""), true
		}
	}
	if err := a.Tried.Refresh; err != nil && a.Kind == KindMain {
		return refuse(policy.ReasonRefreshFailed, errUntil(err), shorten(err.Error(), 240)), true
	}
	return judgement{}, false
}

// needsRelogin reports whether the account's current refresh token was
// rejected for good (BEHAVIOUR.md §2.5): a permanent record bound to this
// identity and refresh token. Time does not heal it; a new refresh token
// does. Views, routing and NoRoute messages all ask this one question.
func needsRelogin(rec *record.OpError, identity, fp string) bool {
	return rec != nil && rec.IsPermanent() && policy.RefreshRecordBinds(rec, identity, fp)
}

// judgeMainQuota is main in views and ordered routing. Main's quota counts
// only when quota.enabled is explicitly true (quota routing), and then a
// snapshot below policy makes main the last resort, not unusable; unknown
// quota refuses main only when failClosedOnUnknownQuota is explicitly true
// and the usage API is backed off (BEHAVIOUR.md §3.2, §5.2).
func judgeMainQuota(s policy.Settings, a *subject, n need, now time.Time) judgement {
	q := a.Quota
	var j judgement
	if n.Purpose == forOrdered && a.Tried.Quota == nil && !policy.QuotaBackoffActive(a.QuotaError, now) {
		routing := s.QuotaRouting && n.Replayable
		stale := policy.QuotaStale(q, s, n.Model, now)
		if (s.Killswitch.Enabled && stale) || (routing && (q == nil || (stale && (standardExhausted(q) || policy.ModelScopeExhausted(q, n.Model))))) {
			j.Settle |= settleQuota
		}
	}
	if q == nil && s.FailClosedExplicit && policy.QuotaBackoffActive(a.QuotaError, now) {
		return refuse(policy.ReasonMainQuotaBackedOff, fromMs(a.QuotaError.NextRetryAt), "")
	}
	if k := killswitchJudgement(q, s, a.ID, n.Model, a.QuotaError, now); !k.Usable {
		k.Settle = j.Settle
		return k
	}
	j.Usable = true
	if s.QuotaRouting && (n.Purpose != forOrdered || n.Replayable) && policy.HasStandardWindows(q) {
		if p := policyJudgement(q, s, now); !p.Usable {
			j.Reason, j.Until, j.LastResort, j.detail = p.Reason, p.Until, true, "main "+p.Text()
		} else if sw := policy.ScopedWindowFor(q, n.Model); sw != nil && policy.ModelScopeExhausted(q, n.Model) {
			until, _ := policy.FutureReset(sw.ResetsAt, now)
			j.Reason, j.Until, j.LastResort, j.detail = policy.ReasonModelScope, until, true, "main "+sw.ModelName+" weekly limit reached"
		}
	}
	return j
}

// judgeFallbackQuota is an OAuth fallback in views and ordered routing:
// its quota passes minimumRemaining (unknown fails under
// failClosedOnUnknownQuota), the model scope and the killswitch. After a
// refresh or poll failure, upstream's failure path decides (BEHAVIOUR.md
// §5.1).
func judgeFallbackQuota(s policy.Settings, a *subject, n need, now time.Time) judgement {
	if a.Tried.Refresh != nil || a.Tried.Quota != nil {
		return judgeFallbackFailure(s, a, n, now)
	}
	var settle settleIO
	if n.Purpose == forOrdered && (s.QuotaEnabled || s.Killswitch.Enabled) && policy.QuotaStale(a.Quota, s, n.Model, now) && !policy.QuotaBackoffActive(a.QuotaError, now) {
		settle = settleQuota
	}
	j := quotaJudgement(s, a.Quota, a.QuotaError, a.ID, n.Model, now, s.QuotaEnabled)
	j.Settle = settle
	return j
}

// judgeFallbackFailure decides whether a fallback whose token refresh or
// usage poll just failed may still serve: its cached quota is trusted
// after a transient poll failure while the token is valid and the cached
// windows have not reset; with failClosedOnUnknownQuota off it serves
// unless refresh backoff or the model scope says otherwise. A cached
// snapshot known to fail the thresholds still excludes it.
func judgeFallbackFailure(s policy.Settings, a *subject, n need, now time.Time) judgement {
	q := a.Quota
	err := a.Tried.Refresh
	if err == nil {
		err = a.Tried.Quota
	}
	if a.Tried.Refresh == nil && !expired(a.Access, a.Expires, now) && transientQuotaError(err) && policy.QuotaPassesPolicy(q, s) && windowsCurrent(q, now) {
		return quotaJudgement(s, q, nil, a.ID, n.Model, now, false)
	}
	fp := policy.FingerprintFor(a.RefreshError, a.Refresh)
	if !s.FailClosedOnUnknown && policy.QuotaPassesPolicy(q, s) && !policy.RefreshBackoffActive(a.RefreshError, a.ID, now, fp) && !policy.ModelScopeExhausted(q, n.Model) {
		return killswitchJudgement(q, s, a.ID, n.Model, nil, now)
	}
	r := policy.ReasonQuotaCheckFailed
	if a.Tried.Refresh != nil {
		r = policy.ReasonRefreshFailed
	}
	return refuse(r, errUntil(err), shorten(err.Error(), 240))
}

// judgeStickyKeep decides whether a sticky session keeps its account: a
// fresh snapshot that says migrate (model scope or 7-day spent, or a
// 5-hour window spent with a reset more than 15 minutes away) moves it; a
// 5-hour reset within 15 minutes holds it; a known snapshot below
// minimumRemaining (our addition: a session never drains an account below
// the user's reserve) and the killswitch move it. Stale or unknown quota
// keeps (BEHAVIOUR.md §5.4).
func judgeStickyKeep(s policy.Settings, a *subject, n need, now time.Time) judgement {
	j := judgement{Usable: true}
	if !policy.QuotaBackoffActive(a.QuotaError, now) && !policy.QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		j.Settle = settleQuota
	}
	if policy.QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		d := stickyDecision(a.Quota, n.Model, now)
		switch {
		case d.Hold:
			j = d
			j.Usable = true
		case !d.Usable:
			return d
		}
		if policy.HasStandardWindows(a.Quota) {
			if p := policyJudgement(a.Quota, s, now); !p.Usable {
				return p
			}
		}
	}
	if k := killswitchJudgement(a.Quota, s, a.ID, n.Model, nil, now); !k.Usable {
		return k
	}
	return j
}

// judgeStickyNew decides whether an account may take a new session: it
// passes the killswitch and minimumRemaining (so unknown quota qualifies
// only when quota checks are off or failClosedOnUnknownQuota is off), and
// with known quota it is neither spent for the model nor otherwise
// unusable.
func judgeStickyNew(s policy.Settings, a *subject, n need, now time.Time) judgement {
	var settle settleIO
	if !policy.QuotaBackoffActive(a.QuotaError, now) && !policy.QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		settle = settleQuota
	}
	out := func(j judgement) judgement { j.Settle = settle; return j }
	if k := killswitchJudgement(a.Quota, s, a.ID, n.Model, nil, now); !k.Usable {
		return out(k)
	}
	if p := policyJudgement(a.Quota, s, now); !p.Usable {
		return out(p)
	}
	if policy.HasStandardWindows(a.Quota) {
		if d := stickyDecision(a.Quota, n.Model, now); !d.Usable || d.Hold {
			d.Usable, d.Hold = false, false
			return out(d)
		}
		if a.Kind == KindOAuth {
			if v := judge(s, a, need{Purpose: forView, Model: n.Model}, now); !v.Usable {
				return out(v)
			}
		}
	}
	return out(judgement{Usable: true})
}

// stickyDecision is upstream's decideStickyQuotaFailure: migrate on a spent
// model scope or seven-day window, hold when a spent five-hour window
// resets within 15 minutes (until the reset), migrate on a later
// five-hour reset, otherwise retain. Unknown quota retains.
func stickyDecision(q *record.QuotaSnapshot, model string, now time.Time) judgement {
	if !policy.HasStandardWindows(q) {
		return judgement{Usable: true}
	}
	if sw := policy.ScopedWindowFor(q, model); sw != nil && policy.Finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := policy.FutureReset(sw.ResetsAt, now)
		return refuse(policy.ReasonModelScope, until, sw.ModelName+" weekly limit reached")
	}
	if q.SevenDay.RemainingPercent <= 0 {
		until, _ := policy.FutureReset(q.SevenDay.ResetsAt, now)
		return refuse(policy.ReasonWindowSpent, until, "seven-day quota exhausted")
	}
	if q.FiveHour.RemainingPercent <= 0 {
		until, ok := policy.FutureReset(q.FiveHour.ResetsAt, now)
		if ok && until.Sub(now) <= policy.StickyHoldWindow {
			return judgement{Usable: true, Hold: true, Reason: policy.ReasonResetsShortly, Until: until}
		}
		return refuse(policy.ReasonWindowSpent, until, "five-hour quota exhausted")
	}
	return judgement{Usable: true}
}

// quotaJudgement judges a snapshot: minimumRemaining (when policy is
// true), model scope, a spent window, then the killswitch. A refusal
// without a known end lasts until the quota backoff ends, when one is
// active.
func quotaJudgement(s policy.Settings, q *record.QuotaSnapshot, qerr *record.OpError, id, model string, now time.Time, checkPolicy bool) judgement {
	if checkPolicy {
		if j := policyJudgement(q, s, now); !j.Usable {
			return untilBackoff(j, qerr, now)
		}
	}
	if sw := policy.ScopedWindowFor(q, model); sw != nil && policy.Finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := policy.FutureReset(sw.ResetsAt, now)
		return refuse(policy.ReasonModelScope, until, sw.ModelName+" weekly limit reached")
	}
	return killswitchJudgement(q, s, id, model, qerr, now)
}

func untilBackoff(j judgement, qerr *record.OpError, now time.Time) judgement {
	if j.Until.IsZero() && policy.QuotaBackoffActive(qerr, now) {
		j.Until = fromMs(qerr.NextRetryAt)
	}
	return j
}

// judgeSpent refuses an account that a 429 said is spent (BEHAVIOUR.md
// §5.1): until the latest reset of the windows it named, no request can
// succeed there, so none is sent. A sticky session whose 5-hour window
// resets within 15 minutes holds instead, as for a polled snapshot.
func judgeSpent(sp *record.SpentWindows, n need, now time.Time) (judgement, bool) {
	if sp == nil {
		return judgement{}, false
	}
	five, seven := fromMs(sp.FiveHour), fromMs(sp.SevenDay)
	fiveOut, sevenOut := sp.FiveHour > 0 && five.After(now), sp.SevenDay > 0 && seven.After(now)
	switch {
	case sevenOut && (!fiveOut || seven.After(five)):
		return refuse(policy.ReasonWindowSpent, seven, "7d quota window spent (429) until its reset"), true
	case fiveOut && n.Purpose == forStickyKeep && five.Sub(now) <= policy.StickyHoldWindow:
		return judgement{Usable: true, Hold: true, Reason: policy.ReasonResetsShortly, Until: five}, true
	case fiveOut:
		return refuse(policy.ReasonWindowSpent, five, "5h quota window spent (429) until its reset"), true
	}
	return judgement{}, false
}

// policyJudgement applies quota.minimumRemaining (BEHAVIOUR.md §3.2).
func policyJudgement(q *record.QuotaSnapshot, s policy.Settings, now time.Time) judgement {
	r, detail, until, ok := policy.PolicyFailure(q, s, now)
	if ok {
		return judgement{Usable: true}
	}
	return refuse(r, until, detail)
}

// killswitchJudgement applies the killswitch (BEHAVIOUR.md §5.5).
func killswitchJudgement(q *record.QuotaSnapshot, s policy.Settings, id, model string, qerr *record.OpError, now time.Time) judgement {
	detail, until, ok := policy.KillswitchFailure(q, s, id, model, now)
	if ok {
		return judgement{Usable: true}
	}
	return untilBackoff(refuse(policy.ReasonKillswitch, until, detail), qerr, now)
}

// transientQuotaError reports whether err is a usage-endpoint failure
// that says nothing about the account (rate limit, 5xx, network, a
// concurrent check).
func transientQuotaError(err error) bool {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.Failure.Source == verdict.SourceUsage && (ue.Verdict.Class == verdict.ClassRateLimited || ue.Verdict.Class == verdict.ClassTransient)
	}
	var be *BackoffError
	if errors.As(err, &be) {
		return be.Kind == ErrQuotaBackoff
	}
	return errors.Is(err, ErrInProgress)
}

// mainSubject is main as the judgement sees it.
func mainSubject(snap *Snapshot, creds MainCredentials, has bool) subject {
	return subject{
		ID: MainAccountID, Kind: KindMain, Enabled: true, Identity: mainIdentity(snap), HasCredential: has,
		Access: creds.Access, Refresh: creds.Refresh, Expires: creds.Expires,
		RefreshError: snap.Main.LastRefreshError, Quota: mainQuota(snap), QuotaError: snap.Main.LastQuotaAPIError,
		Spent: snap.Main.RateLimited,
	}
}

// accountSubject is a fallback as the judgement sees it.
func accountSubject(a *Account) subject {
	k := KindUnknown
	switch a.Type {
	case record.AccountOAuth:
		k = KindOAuth
	case record.AccountAPI:
		k = KindAPI
	}
	return subject{
		ID: a.ID, Kind: k, Order: a.Order + 1, Problem: a.Problem, Enabled: a.IsEnabled(), Identity: a.ID, HasCredential: true,
		Access: a.State.Access, Refresh: a.State.Refresh, Expires: a.State.Expires,
		RefreshError: a.State.LastRefreshError, Quota: a.State.Quota, QuotaError: a.State.LastQuotaRefreshError,
		Spent: a.State.RateLimited,
	}
}

// kindOf derives an account's kind from the snapshot by id.
func kindOf(snap *Snapshot, id string) RouteKind {
	if id == MainAccountID {
		return KindMain
	}
	if a, ok := snap.Account(id); ok && a.ID == id {
		return accountSubject(a).Kind
	}
	return KindUnknown
}

// mainQuota returns the stored main snapshot if it belongs to the current
// main identity.
func mainQuota(snap *Snapshot) *record.QuotaSnapshot {
	q := snap.Main.Quota
	if q == nil {
		return nil
	}
	switch q.AccountIdentity {
	case "", MainAccountID, mainIdentity(snap):
		return q
	}
	if p := storedProfile(snap.Main); p != nil && p.ProviderAccountUUID != "" && q.AccountIdentity == p.ProviderAccountUUID {
		// Bound to the Claude account of main's token (BEHAVIOUR.md §3.7),
		// as upstream writes it.
		return q
	}
	return nil
}
