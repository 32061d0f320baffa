package policy

import (
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// This file is the one answer to "can this account serve this request, and
// if not, why and until when?" (BEHAVIOUR.md §5.1). Judge is pure: it reads
// settings, the account's stored data, the request and the time. When the
// answer depends on I/O (a token refresh, a usage poll) it says so in
// Settle; the engine does that I/O and asks again with the outcome in
// Subject.Tried. Views, ordered routing, sticky routing, NoRoute messages
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

// SettleIO is the I/O that would settle a judgement.
type SettleIO uint8

// The I/O a judgement can ask for.
const (
	// SettleRefresh: the access token is due; refresh it before use.
	SettleRefresh SettleIO = 1 << iota
	// SettleQuota: the quota snapshot is stale; poll usage, then judge again.
	SettleQuota
)

// Purpose is what a judgement is for: the same facts weigh differently
// when listing an account, routing an ordered request, keeping a sticky
// session on its account, or giving an account a new session.
type Purpose uint8

// The purposes of a judgement.
const (
	// ForView judges stored data for accounts/list and accounts/get.
	ForView Purpose = iota
	// ForOrdered routes main-first and fallback-first requests.
	ForOrdered
	// ForStickyKeep decides whether a session keeps its account.
	ForStickyKeep
	// ForStickyNew decides whether an account may take a new session.
	ForStickyNew
)

// Need is the request a judgement is about.
type Need struct {
	Purpose Purpose
	// Model is the request's model id, for model-scoped windows.
	Model string
	// Replayable is true when the request may move to another account;
	// main's quota routing only applies then.
	Replayable bool
	// IncludeAPI is set when main's OAuth quota is confirmed spent, which
	// opens API-key routes.
	IncludeAPI bool
}

// Subject is one account's stored data as the judgement needs it; main is
// an account whose credential comes from the host.
type Subject struct {
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
	Tried Tried
}

// Tried is what the I/O the engine did for one judgement found, as facts
// the engine read from its errors before asking again.
type Tried struct {
	// Refresh is the outcome of the token refresh this request made.
	Refresh IOFailure
	// Quota is the outcome of the usage poll this request made.
	Quota IOFailure
}

// IOFailure is one failed token refresh or usage poll as the judgement and
// the report plan read it; the zero value is no failure.
type IOFailure struct {
	// Failed is set when the I/O failed.
	Failed bool
	// Message is the error's text for display (never carries a secret).
	Message string
	// Until is when the failure's backoff ends; zero when unknown.
	Until time.Time
	// Transient marks a usage-endpoint failure that says nothing about the
	// account (rate limit, 5xx, network, a concurrent check).
	Transient bool
	// NeedsRelogin marks a refresh token rejected for good (invalid_grant).
	NeedsRelogin bool
}

// Judgement is the answer: usable or not, the reason, until when, and what
// I/O would settle it.
type Judgement struct {
	Usable bool
	Reason Reason
	// Until is when the reason ends; zero when unknown or never.
	Until time.Time
	// Settle is the I/O to do before the account is used or judged again.
	Settle SettleIO
	// LastResort marks main usable below its quota policy: in ordered
	// modes fallbacks go first and main serves only when none can.
	LastResort bool
	// Hold marks a sticky session that keeps its account but waits until
	// Until (ReasonResetsShortly).
	Hold bool
	// Detail is the display text when it says more than the reason.
	Detail string
}

// Text is the judgement for display: the reason with its particulars
// ("5h quota below minimum (3% < 10%)").
func (j Judgement) Text() string {
	if j.Detail != "" {
		return j.Detail
	}
	return j.Reason.String()
}

func refuse(r Reason, until time.Time, detail string) Judgement {
	return Judgement{Reason: r, Until: until, Detail: detail}
}

// Judge answers whether the account a can serve the request n at now
// under settings s (BEHAVIOUR.md §5.1). It does no I/O: when a token
// refresh or a usage poll would change the answer it returns the current
// answer with Settle set, and the engine asks again after the I/O with
// a.Tried filled in.
func Judge(s Settings, a *Subject, n Need, now time.Time) Judgement {
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
	settle := SettleIO(0)
	if tokenDue(s, a, now) && !a.Tried.Refresh.Failed {
		settle = SettleRefresh
	}
	var j Judgement
	switch {
	case n.Purpose == ForStickyKeep:
		j = judgeStickyKeep(s, a, n, now)
	case n.Purpose == ForStickyNew:
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
func judgeEntry(a *Subject, n Need) (Judgement, bool) {
	sticky := n.Purpose == ForStickyKeep || n.Purpose == ForStickyNew
	switch {
	case a.Kind == KindUnknown || a.Problem != "":
		return refuse(ReasonEntryProblem, time.Time{}, a.Problem), true
	case !a.Enabled:
		return refuse(ReasonDisabled, time.Time{}, ""), true
	case a.Kind == KindAPI && sticky:
		return refuse(ReasonNotSticky, time.Time{}, ""), true
	case a.Kind == KindMain && !a.HasCredential:
		return refuse(ReasonNoCredentials, time.Time{}, "main credentials not set"), true
	case a.Kind == KindOAuth && sticky && a.Access == "":
		return refuse(ReasonNoCredentials, time.Time{}, "no access token"), true
	}
	return Judgement{}, false
}

// judgeAPI is an API-key route: usable when complete and enabled, but
// routed only when main's OAuth quota is confirmed spent.
func judgeAPI(n Need) Judgement {
	if n.Purpose == ForOrdered && !n.IncludeAPI {
		return refuse(ReasonAPIReserved, time.Time{}, "")
	}
	return Judgement{Usable: true, Detail: "API-key route (used only when main quota is confirmed exhausted)"}
}

// tokenDue reports whether the account's access token must be refreshed
// before use: main when it is expired (the host refreshes it early),
// fallbacks within the refresh window (BEHAVIOUR.md §2.3).
func tokenDue(s Settings, a *Subject, now time.Time) bool {
	if a.Kind == KindMain {
		return Expired(a.Access, a.Expires, now)
	}
	return NeedsRefresh(a.Access, a.Expires, s.RefreshBeforeExpiry, now)
}

// judgeToken refuses an account whose token cannot be had: a refresh token
// rejected for good, an active refresh backoff while the token is due (for
// sticky main, whenever it is active), or a refresh that just failed.
func judgeToken(s Settings, a *Subject, n Need, now time.Time) (Judgement, bool) {
	rec := a.RefreshError
	fp := FingerprintFor(rec, a.Refresh)
	if NeedsRelogin(rec, a.Identity, fp) {
		return refuse(ReasonNeedsRelogin, time.Time{}, ""), true
	}
	due := tokenDue(s, a, now)
	sticky := n.Purpose == ForStickyKeep || n.Purpose == ForStickyNew
	if due || (sticky && a.Kind == KindMain) {
		if until, ok := RefreshBackoffUntil(rec, a.Identity, now, fp); ok {
			return refuse(ReasonRefreshBackoff, until, ""), true
		}
	}
	if f := a.Tried.Refresh; f.Failed && a.Kind == KindMain {
		return refuse(ReasonRefreshFailed, f.Until, Shorten(f.Message, 240)), true
	}
	return Judgement{}, false
}

// NeedsRelogin reports whether the account's current refresh token was
// rejected for good (BEHAVIOUR.md §2.5): a permanent record bound to this
// identity and refresh token. Time does not heal it; a new refresh token
// does. Views, routing and NoRoute messages all ask this one question.
func NeedsRelogin(rec *record.OpError, identity, fp string) bool {
	return rec != nil && rec.IsPermanent() && RefreshRecordBinds(rec, identity, fp)
}

// judgeMainQuota is main in views and ordered routing. Main's quota counts
// only when quota.enabled is explicitly true (quota routing), and then a
// snapshot below policy makes main the last resort, not unusable; unknown
// quota refuses main only when failClosedOnUnknownQuota is explicitly true
// and the usage API is backed off (BEHAVIOUR.md §3.2, §5.2).
func judgeMainQuota(s Settings, a *Subject, n Need, now time.Time) Judgement {
	q := a.Quota
	var j Judgement
	if n.Purpose == ForOrdered && !a.Tried.Quota.Failed && !QuotaBackoffActive(a.QuotaError, now) {
		routing := s.QuotaRouting && n.Replayable
		stale := QuotaStale(q, s, n.Model, now)
		if (s.Killswitch.Enabled && stale) || (routing && (q == nil || (stale && (StandardExhausted(q) || ModelScopeExhausted(q, n.Model))))) {
			j.Settle |= SettleQuota
		}
	}
	if q == nil && s.FailClosedExplicit && QuotaBackoffActive(a.QuotaError, now) {
		return refuse(ReasonMainQuotaBackedOff, time.UnixMilli(a.QuotaError.NextRetryAt), "")
	}
	if k := killswitchJudgement(q, s, a.ID, n.Model, a.QuotaError, now); !k.Usable {
		k.Settle = j.Settle
		return k
	}
	j.Usable = true
	if s.QuotaRouting && (n.Purpose != ForOrdered || n.Replayable) && HasStandardWindows(q) {
		if p := policyJudgement(q, s, now); !p.Usable {
			j.Reason, j.Until, j.LastResort, j.Detail = p.Reason, p.Until, true, "main "+p.Text()
		} else if sw := ScopedWindowFor(q, n.Model); sw != nil && ModelScopeExhausted(q, n.Model) {
			until, _ := FutureReset(sw.ResetsAt, now)
			j.Reason, j.Until, j.LastResort, j.Detail = ReasonModelScope, until, true, "main "+sw.ModelName+" weekly limit reached"
		}
	}
	return j
}

// judgeFallbackQuota is an OAuth fallback in views and ordered routing:
// its quota passes minimumRemaining (unknown fails under
// failClosedOnUnknownQuota), the model scope and the killswitch. After a
// refresh or poll failure, upstream's failure path decides (BEHAVIOUR.md
// §5.1).
func judgeFallbackQuota(s Settings, a *Subject, n Need, now time.Time) Judgement {
	if a.Tried.Refresh.Failed || a.Tried.Quota.Failed {
		return judgeFallbackFailure(s, a, n, now)
	}
	var settle SettleIO
	if n.Purpose == ForOrdered && (s.QuotaEnabled || s.Killswitch.Enabled) && QuotaStale(a.Quota, s, n.Model, now) && !QuotaBackoffActive(a.QuotaError, now) {
		settle = SettleQuota
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
func judgeFallbackFailure(s Settings, a *Subject, n Need, now time.Time) Judgement {
	q := a.Quota
	f := a.Tried.Refresh
	if !f.Failed {
		f = a.Tried.Quota
	}
	if !a.Tried.Refresh.Failed && !Expired(a.Access, a.Expires, now) && a.Tried.Quota.Transient && QuotaPassesPolicy(q, s) && WindowsCurrent(q, now) {
		return quotaJudgement(s, q, nil, a.ID, n.Model, now, false)
	}
	fp := FingerprintFor(a.RefreshError, a.Refresh)
	if !s.FailClosedOnUnknown && QuotaPassesPolicy(q, s) && !RefreshBackoffActive(a.RefreshError, a.ID, now, fp) && !ModelScopeExhausted(q, n.Model) {
		return killswitchJudgement(q, s, a.ID, n.Model, nil, now)
	}
	r := ReasonQuotaCheckFailed
	if a.Tried.Refresh.Failed {
		r = ReasonRefreshFailed
	}
	return refuse(r, f.Until, Shorten(f.Message, 240))
}

// judgeStickyKeep decides whether a sticky session keeps its account: a
// fresh snapshot that says migrate (model scope or 7-day spent, or a
// 5-hour window spent with a reset more than 15 minutes away) moves it; a
// 5-hour reset within 15 minutes holds it; a known snapshot below
// minimumRemaining (our addition: a session never drains an account below
// the user's reserve) and the killswitch move it. Stale or unknown quota
// keeps (BEHAVIOUR.md §5.4).
func judgeStickyKeep(s Settings, a *Subject, n Need, now time.Time) Judgement {
	j := Judgement{Usable: true}
	if !QuotaBackoffActive(a.QuotaError, now) && !QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		j.Settle = SettleQuota
	}
	if QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		d := StickyDecision(a.Quota, n.Model, now)
		switch {
		case d.Hold:
			j = d
			j.Usable = true
		case !d.Usable:
			return d
		}
		if HasStandardWindows(a.Quota) {
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
func judgeStickyNew(s Settings, a *Subject, n Need, now time.Time) Judgement {
	var settle SettleIO
	if !QuotaBackoffActive(a.QuotaError, now) && !QuotaAgeFresh(a.Quota, s.QuotaCheckInterval, n.Model, now) {
		settle = SettleQuota
	}
	out := func(j Judgement) Judgement { j.Settle = settle; return j }
	if k := killswitchJudgement(a.Quota, s, a.ID, n.Model, nil, now); !k.Usable {
		return out(k)
	}
	if p := policyJudgement(a.Quota, s, now); !p.Usable {
		return out(p)
	}
	if HasStandardWindows(a.Quota) {
		if d := StickyDecision(a.Quota, n.Model, now); !d.Usable || d.Hold {
			d.Usable, d.Hold = false, false
			return out(d)
		}
		if a.Kind == KindOAuth {
			if v := Judge(s, a, Need{Purpose: ForView, Model: n.Model}, now); !v.Usable {
				return out(v)
			}
		}
	}
	return out(Judgement{Usable: true})
}

// StickyDecision is upstream's decideStickyQuotaFailure: migrate on a spent
// model scope or seven-day window, hold when a spent five-hour window
// resets within 15 minutes (until the reset), migrate on a later
// five-hour reset, otherwise retain. Unknown quota retains.
func StickyDecision(q *record.QuotaSnapshot, model string, now time.Time) Judgement {
	if !HasStandardWindows(q) {
		return Judgement{Usable: true}
	}
	if sw := ScopedWindowFor(q, model); sw != nil && Finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := FutureReset(sw.ResetsAt, now)
		return refuse(ReasonModelScope, until, sw.ModelName+" weekly limit reached")
	}
	if q.SevenDay.RemainingPercent <= 0 {
		until, _ := FutureReset(q.SevenDay.ResetsAt, now)
		return refuse(ReasonWindowSpent, until, "seven-day quota exhausted")
	}
	if q.FiveHour.RemainingPercent <= 0 {
		until, ok := FutureReset(q.FiveHour.ResetsAt, now)
		if ok && until.Sub(now) <= StickyHoldWindow {
			return Judgement{Usable: true, Hold: true, Reason: ReasonResetsShortly, Until: until}
		}
		return refuse(ReasonWindowSpent, until, "five-hour quota exhausted")
	}
	return Judgement{Usable: true}
}

// quotaJudgement judges a snapshot: minimumRemaining (when policy is
// true), model scope, a spent window, then the killswitch. A refusal
// without a known end lasts until the quota backoff ends, when one is
// active.
func quotaJudgement(s Settings, q *record.QuotaSnapshot, qerr *record.OpError, id, model string, now time.Time, checkPolicy bool) Judgement {
	if checkPolicy {
		if j := policyJudgement(q, s, now); !j.Usable {
			return untilBackoff(j, qerr, now)
		}
	}
	if sw := ScopedWindowFor(q, model); sw != nil && Finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := FutureReset(sw.ResetsAt, now)
		return refuse(ReasonModelScope, until, sw.ModelName+" weekly limit reached")
	}
	return killswitchJudgement(q, s, id, model, qerr, now)
}

func untilBackoff(j Judgement, qerr *record.OpError, now time.Time) Judgement {
	if j.Until.IsZero() && QuotaBackoffActive(qerr, now) {
		j.Until = time.UnixMilli(qerr.NextRetryAt)
	}
	return j
}

// judgeSpent refuses an account that a 429 said is spent (BEHAVIOUR.md
// §5.1): until the latest reset of the windows it named, no request can
// succeed there, so none is sent. A sticky session whose 5-hour window
// resets within 15 minutes holds instead, as for a polled snapshot.
func judgeSpent(sp *record.SpentWindows, n Need, now time.Time) (Judgement, bool) {
	if sp == nil {
		return Judgement{}, false
	}
	five, seven := time.UnixMilli(sp.FiveHour), time.UnixMilli(sp.SevenDay)
	fiveOut, sevenOut := sp.FiveHour > 0 && five.After(now), sp.SevenDay > 0 && seven.After(now)
	switch {
	case sevenOut && (!fiveOut || seven.After(five)):
		return refuse(ReasonWindowSpent, seven, "7d quota window spent (429) until its reset"), true
	case fiveOut && n.Purpose == ForStickyKeep && five.Sub(now) <= StickyHoldWindow:
		return Judgement{Usable: true, Hold: true, Reason: ReasonResetsShortly, Until: five}, true
	case fiveOut:
		return refuse(ReasonWindowSpent, five, "5h quota window spent (429) until its reset"), true
	}
	return Judgement{}, false
}

// policyJudgement applies quota.minimumRemaining (BEHAVIOUR.md §3.2).
func policyJudgement(q *record.QuotaSnapshot, s Settings, now time.Time) Judgement {
	r, detail, until, ok := PolicyFailure(q, s, now)
	if ok {
		return Judgement{Usable: true}
	}
	return refuse(r, until, detail)
}

// killswitchJudgement applies the killswitch (BEHAVIOUR.md §5.5).
func killswitchJudgement(q *record.QuotaSnapshot, s Settings, id, model string, qerr *record.OpError, now time.Time) Judgement {
	detail, until, ok := KillswitchFailure(q, s, id, model, now)
	if ok {
		return Judgement{Usable: true}
	}
	return untilBackoff(refuse(ReasonKillswitch, until, detail), qerr, now)
}

// NeedsRefresh reports whether an access token is missing or expires within
// the refresh window (upstream tokenNeedsRefresh).
func NeedsRefresh(access secret.Secret, expires int64, window time.Duration, now time.Time) bool {
	return access == "" || expires == 0 || time.UnixMilli(expires).Sub(now) <= window
}

// Expired reports whether an access token is missing or past its expiry.
func Expired(access secret.Secret, expires int64, now time.Time) bool {
	return access == "" || expires == 0 || !time.UnixMilli(expires).After(now)
}

// StandardExhausted reports whether the snapshot's 5h or 7d window is at
// 0 % remaining.
func StandardExhausted(q *record.QuotaSnapshot) bool {
	return (q.FiveHour != nil && q.FiveHour.RemainingPercent <= 0) || (q.SevenDay != nil && q.SevenDay.RemainingPercent <= 0)
}

// WindowsCurrent reports whether the cached 5h and 7d windows have not
// reset yet (no reset known counts as current).
func WindowsCurrent(q *record.QuotaSnapshot, now time.Time) bool {
	if q == nil {
		return false
	}
	for _, w := range []*record.QuotaWindow{q.FiveHour, q.SevenDay} {
		if w == nil {
			continue
		}
		if t, ok := ParseReset(w.ResetsAt); ok && !t.After(now) {
			return false
		}
	}
	return true
}

// Shorten cuts a message to n bytes for display, marking the cut.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
