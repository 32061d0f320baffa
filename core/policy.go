package core

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Usability says whether an account can serve a request now and, if not,
// the one reason and the moment that reason ends. Views show it and every
// NoRoute lists it per account, so "no account available" always comes with
// "because ..., until ...".
type Usability struct {
	OK bool
	// Reason is a short phrase ("disabled", "refresh backoff", "5h quota
	// below minimum (3% < 10%)"); for a usable account it may say how.
	Reason string
	// Until is when the reason ends; zero when unknown or never (a
	// disabled account, a refresh token that needs a re-login).
	Until time.Time
}

// Usability reasons that hosts may match on.
const (
	ReasonDisabled       = "disabled"
	ReasonNeedsRelogin   = "needs re-login"
	ReasonRefreshBackoff = "refresh backoff"
	ReasonQuotaUnknown   = "quota unknown"
	ReasonNoMain         = "main credentials not set"
	ReasonMainQuotaOff   = "main quota API backed off and no quota known"
)

// stickyHoldWindow is how close a five-hour reset must be for sticky
// routing to hold a session instead of migrating it.
const stickyHoldWindow = 15 * time.Minute

// networkRefreshHeal caps how long a network-only refresh failure latches,
// which heals old 24 h latches written for network errors.
const networkRefreshHeal = 5 * time.Minute

// RefreshBackoffActive reports whether a persisted refresh error still
// latches the account's token refresh (upstream refreshBackoffActive). The
// latch is bound to the account identity (the account id, or mainAccountId
// for main) and to the fingerprint of the refresh token that failed: a
// rotated or re-logged refresh token releases it at once.
//
// # Notes
//
// A record of a network failure (no HTTP status) latches at most 5 minutes
// after it was written, whatever its nextRetryAt says.
func RefreshBackoffActive(err *OpError, identity string, now time.Time, currentFingerprint string) bool {
	_, ok := refreshBackoffUntil(err, identity, now, currentFingerprint)
	return ok
}

func refreshBackoffUntil(err *OpError, identity string, now time.Time, fp string) (time.Time, bool) {
	if err == nil || err.NextRetryAt == 0 {
		return time.Time{}, false
	}
	retryAt := err.NextRetryAt
	if networkLooking(err) {
		if heal := err.CheckedAt + networkRefreshHeal.Milliseconds(); heal < retryAt {
			retryAt = heal
		}
	}
	until := fromMs(retryAt)
	if !until.After(now) {
		return time.Time{}, false
	}
	if !refreshRecordBinds(err, identity, fp) {
		return time.Time{}, false
	}
	return until, true
}

// refreshRecordBinds reports whether a refresh error belongs to the
// account's current identity and refresh token.
func refreshRecordBinds(err *OpError, identity, fp string) bool {
	if err.RefreshTokenFingerprint != "" && fp != "" && err.RefreshTokenFingerprint != fp {
		return false
	}
	if err.AccountIdentity == "" || identity == "" {
		return true
	}
	return err.AccountIdentity == identity
}

// refreshPermanent reports whether the account's current refresh token was
// rejected for good (invalid_grant): it needs a re-login, whatever the
// record's nextRetryAt says. A new refresh token releases it.
func refreshPermanent(err *OpError, identity, fp string) bool {
	return err != nil && err.IsPermanent() && refreshRecordBinds(err, identity, fp)
}

// fingerprintFor is the refresh token's fingerprint when there is a
// record to compare it with; hashing is skipped otherwise.
func fingerprintFor(rec *OpError, refresh Secret) string {
	if rec == nil {
		return ""
	}
	return refresh.Fingerprint()
}

func networkLooking(err *OpError) bool {
	if err.Status != 0 {
		return false
	}
	if err.Class == ClassTransient {
		return true
	}
	m := err.Message
	for _, s := range []string{"fetch failed", "network error", "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "connection reset", "connection refused"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// QuotaBackoffActive reports whether a persisted quota error still stops
// quota checks of its account. Quota backoff never makes an account
// unusable by itself: its cached quota is evaluated instead.
func QuotaBackoffActive(err *OpError, now time.Time) bool {
	return err != nil && fromMs(err.NextRetryAt).After(now)
}

// QuotaStale reports whether a snapshot must be fetched again before it is
// trusted for routing (upstream-core.md 3.3): it is stale unless both
// standard windows exist and are younger than the check interval, and the
// model's scoped window (if any) is too. A window that blocks routing is
// also stale one minute after its reset, so an account comes back soon
// after its limit lifts rather than at the next interval.
func QuotaStale(q *QuotaSnapshot, s Settings, model string, now time.Time) bool {
	if !quotaAgeFresh(q, s.QuotaCheckInterval, model, now) {
		return true
	}
	after := func(w *QuotaWindow, threshold float64) bool {
		if w.RemainingPercent >= threshold && w.RemainingPercent > 0 {
			return false
		}
		t, ok := parseReset(w.ResetsAt)
		return ok && !now.Before(t.Add(time.Minute))
	}
	if after(q.FiveHour, s.MinimumRemaining.FiveHour) || after(q.SevenDay, s.MinimumRemaining.SevenDay) {
		return true
	}
	if sw := scopedWindowFor(q, model); sw != nil && sw.RemainingPercent <= 0 {
		if t, ok := parseReset(sw.ResetsAt); ok && !now.Before(t.Add(time.Minute)) {
			return true
		}
	}
	return false
}

// quotaAgeFresh is upstream's sticky freshness: both standard windows exist
// with an age below the interval, and so does the model's scoped window.
func quotaAgeFresh(q *QuotaSnapshot, interval time.Duration, model string, now time.Time) bool {
	if q == nil || q.FiveHour == nil || q.SevenDay == nil {
		return false
	}
	if interval < time.Minute {
		interval = time.Minute
	}
	limit := epochMs(now) - interval.Milliseconds()
	if q.FiveHour.CheckedAt <= limit || q.SevenDay.CheckedAt <= limit {
		return false
	}
	if sw := scopedWindowFor(q, model); sw != nil && sw.CheckedAt <= limit {
		return false
	}
	return true
}

// QuotaPassesPolicy reports whether a snapshot satisfies the minimumRemaining
// thresholds (upstream quotaSnapshotPassesPolicy). With quota checks
// disabled everything passes; a missing standard window passes only when
// failClosedOnUnknownQuota is false.
func QuotaPassesPolicy(q *QuotaSnapshot, s Settings) bool {
	_, _, ok := policyFailure(q, s, time.Time{})
	return ok
}

// policyFailure returns why q fails the minimumRemaining policy and when
// that ends, or ok.
func policyFailure(q *QuotaSnapshot, s Settings, now time.Time) (string, time.Time, bool) {
	if !s.QuotaEnabled {
		return "", time.Time{}, true
	}
	check := func(name string, w *QuotaWindow, threshold float64) (string, time.Time, bool, bool) {
		if w == nil || !finite(w.RemainingPercent) {
			if s.FailClosedOnUnknown {
				return ReasonQuotaUnknown + " (no " + name + " window)", time.Time{}, false, true
			}
			return "", time.Time{}, true, true
		}
		if w.RemainingPercent < threshold {
			until, _ := futureReset(w.ResetsAt, now)
			return fmt.Sprintf("%s quota below minimum (%s%% < %s%%)", name, pct(w.RemainingPercent), pct(threshold)), until, false, true
		}
		return "", time.Time{}, true, false
	}
	var five, seven *QuotaWindow
	if q != nil {
		five, seven = q.FiveHour, q.SevenDay
	}
	if r, u, ok, done := check("5h", five, s.MinimumRemaining.FiveHour); done {
		return r, u, ok
	}
	if r, u, ok, done := check("7d", seven, s.MinimumRemaining.SevenDay); done {
		return r, u, ok
	}
	return "", time.Time{}, true
}

// ModelScopeExhausted reports whether the model's scoped weekly window (for
// example "Fable only") is at or below 0 % remaining. An empty scoped list
// and a model without a scoped window are not exhausted.
func ModelScopeExhausted(q *QuotaSnapshot, model string) bool {
	sw := scopedWindowFor(q, model)
	return sw != nil && finite(sw.RemainingPercent) && sw.RemainingPercent <= 0
}

// scopedWindowFor returns the scoped window that limits model, if any
// (upstream getScopedQuotaWindowForModel): Fable and Mythos models match by
// family name, others by their whole normalized id.
func scopedWindowFor(q *QuotaSnapshot, model string) *ScopedWindow {
	if q == nil || len(q.Scoped) == 0 || model == "" {
		return nil
	}
	key := scopeKey(model)
	if key == "" {
		return nil
	}
	for i := range q.Scoped {
		sw := &q.Scoped[i]
		if normalizedContains(sw.ModelID, key) || normalizedContains(sw.ModelName, key) || normalizedContains(sw.Title, key) {
			return sw
		}
	}
	return nil
}

func scopeKey(model string) string {
	key := normalizeModel(model)
	switch {
	case strings.Contains(key, "fable"):
		return "fable"
	case strings.Contains(key, "mythos"):
		return "mythos"
	}
	return key
}

// normalizeModel lowercases s and keeps only ASCII letters and digits.
func normalizeModel(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		}
	}
	return b.String()
}

// normalizedContains reports whether normalizeModel(s) contains key,
// without allocating.
func normalizedContains(s, key string) bool {
	if key == "" {
		return false
	}
	// Try every start position in s; match key against the normalized
	// stream from there.
	for start := 0; start < len(s); start++ {
		if lowerAlnum(s[start]) != key[0] {
			continue
		}
		k, i := 0, start
		for i < len(s) && k < len(key) {
			c := lowerAlnum(s[i])
			i++
			if c == 0 {
				continue
			}
			if c != key[k] {
				break
			}
			k++
		}
		if k == len(key) {
			return true
		}
	}
	return false
}

func lowerAlnum(c byte) byte {
	switch {
	case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return c
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	}
	return 0
}

// modelFamily is the sticky family of a model: "fable" for Fable and
// Mythos 5, "opus" for Opus, else "general".
func modelFamily(model string) string {
	switch {
	case model == "":
		return "general"
	case normalizedContains(model, "fable"), normalizedContains(model, "mythos5"):
		return "fable"
	case normalizedContains(model, "opus"):
		return "opus"
	}
	return "general"
}

// parseReset parses a window's ISO-8601 resetsAt.
func parseReset(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// futureReset returns a window's reset if it is after now (or any valid
// reset when now is zero).
func futureReset(s string, now time.Time) (time.Time, bool) {
	t, ok := parseReset(s)
	if !ok || (!now.IsZero() && !t.After(now)) {
		return time.Time{}, false
	}
	return t, true
}

func pct(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%.1f", f)
}

// hasStandardWindows reports whether q knows both the 5h and 7d windows.
func hasStandardWindows(q *QuotaSnapshot) bool {
	return q != nil && q.FiveHour != nil && q.SevenDay != nil &&
		finite(q.FiveHour.RemainingPercent) && finite(q.SevenDay.RemainingPercent)
}

// AccountUsability says whether a fallback account can serve a request for
// model at now, judged on stored data only (upstream-core.md 5.6): enabled,
// its entry complete, its refresh token not rejected for good, its token
// valid or refreshable (no refresh backoff bound to its current refresh
// token while it needs a refresh), its quota passing minimumRemaining and
// the model's scope (unknown quota fails when failClosedOnUnknownQuota),
// and the killswitch when it is on. An API-key route is usable when it is
// enabled and complete; routing still uses it only on confirmed main
// exhaustion.
func AccountUsability(snap *Snapshot, a *Account, model string, now time.Time) Usability {
	if a.Problem != "" {
		return Usability{Reason: a.Problem}
	}
	if !a.IsEnabled() {
		return Usability{Reason: ReasonDisabled}
	}
	if a.Type == AccountAPI {
		return Usability{OK: true, Reason: "API-key route (used only when main quota is confirmed exhausted)"}
	}
	s := snap.Settings
	rec := a.State.LastRefreshError
	fp := fingerprintFor(rec, a.State.Refresh)
	if refreshPermanent(rec, a.ID, fp) {
		return Usability{Reason: ReasonNeedsRelogin}
	}
	if needsRefresh(a.State.Access, a.State.Expires, s.RefreshBeforeExpiry, now) {
		if until, ok := refreshBackoffUntil(rec, a.ID, now, fp); ok {
			return Usability{Reason: ReasonRefreshBackoff, Until: until}
		}
	}
	return quotaUsability(s, a.State.Quota, a.State.LastQuotaRefreshError, a.ID, model, now, s.QuotaEnabled)
}

// quotaUsability judges a snapshot: minimumRemaining (when policy is
// true), model scope, then the killswitch.
func quotaUsability(s Settings, q *QuotaSnapshot, qerr *OpError, id, model string, now time.Time, policy bool) Usability {
	if policy {
		if r, until, ok := policyFailure(q, s, now); !ok {
			if until.IsZero() && QuotaBackoffActive(qerr, now) {
				until = fromMs(qerr.NextRetryAt)
			}
			return Usability{Reason: r, Until: until}
		}
	}
	if sw := scopedWindowFor(q, model); sw != nil && finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := futureReset(sw.ResetsAt, now)
		return Usability{Reason: sw.ModelName + " weekly limit reached", Until: until}
	}
	if r, until, ok := killswitchFailure(q, s, id, model, now); !ok {
		if until.IsZero() && QuotaBackoffActive(qerr, now) {
			until = fromMs(qerr.NextRetryAt)
		}
		return Usability{Reason: r, Until: until}
	}
	return Usability{OK: true}
}

// mainQuota returns the stored main snapshot if it belongs to the current
// main identity.
func mainQuota(snap *Snapshot) *QuotaSnapshot {
	q := snap.Main.Quota
	if q == nil {
		return nil
	}
	switch q.AccountIdentity {
	case "", MainAccountID, mainIdentity(snap):
		return q
	}
	return nil
}

// MainUsability is [AccountUsability] for the host's own account: its
// credentials handed over, its refresh token not rejected for good, no
// refresh backoff while its access token is expired, and, when main quota
// routing is on (quota.enabled true), a known snapshot that passes
// minimumRemaining; then model scope and the killswitch. With no main
// snapshot, failClosedOnUnknownQuota and the main quota API backed off,
// main is unusable until the backoff ends (upstream's fail-closed 429).
func MainUsability(snap *Snapshot, creds MainCredentials, hasCreds bool, model string, now time.Time) Usability {
	if !hasCreds {
		return Usability{Reason: ReasonNoMain}
	}
	s := snap.Settings
	id := mainIdentity(snap)
	rec := snap.Main.LastRefreshError
	fp := fingerprintFor(rec, creds.Refresh)
	if refreshPermanent(rec, id, fp) {
		return Usability{Reason: ReasonNeedsRelogin}
	}
	if expired(creds.Access, creds.Expires, now) {
		if until, ok := refreshBackoffUntil(rec, id, now, fp); ok {
			return Usability{Reason: ReasonRefreshBackoff, Until: until}
		}
	}
	q := mainQuota(snap)
	qerr := snap.Main.LastQuotaAPIError
	if q == nil && s.FailClosedOnUnknown && QuotaBackoffActive(qerr, now) {
		return Usability{Reason: ReasonMainQuotaOff, Until: fromMs(qerr.NextRetryAt)}
	}
	return quotaUsability(s, q, qerr, MainAccountID, model, now, s.QuotaRouting && hasStandardWindows(q))
}
