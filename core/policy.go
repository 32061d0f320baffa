package core

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// stickyHoldWindow is how close a five-hour reset must be for sticky
// routing to hold a session instead of migrating it.
const stickyHoldWindow = 15 * time.Minute

// networkRefreshHeal caps how long a network-only refresh failure latches,
// which heals old 24 h latches written for network errors.
const networkRefreshHeal = 5 * time.Minute

// refreshBackoffActive reports whether a persisted refresh error still
// latches the account's token refresh (upstream refreshBackoffActive). The
// latch is bound to the account identity (the account id, or mainAccountId
// for main) and to the fingerprint of the refresh token that failed: a
// rotated or re-logged refresh token releases it at once.
//
// # Notes
//
// A record of a network failure (no HTTP status) latches at most 5 minutes
// after it was written, whatever its nextRetryAt says.
func refreshBackoffActive(err *record.OpError, identity string, now time.Time, currentFingerprint string) bool {
	_, ok := refreshBackoffUntil(err, identity, now, currentFingerprint)
	return ok
}

func refreshBackoffUntil(err *record.OpError, identity string, now time.Time, fp string) (time.Time, bool) {
	if err == nil || err.NextRetryAt == 0 {
		return time.Time{}, false
	}
	retryAt := err.NextRetryAt
	if err.LooksLikeNetwork() {
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
func refreshRecordBinds(err *record.OpError, identity, fp string) bool {
	if err.RefreshTokenFingerprint != "" && fp != "" && err.RefreshTokenFingerprint != fp {
		return false
	}
	if err.AccountIdentity == "" || identity == "" {
		return true
	}
	return err.AccountIdentity == identity
}

// fingerprintFor is the refresh token's fingerprint when there is a
// record to compare it with; hashing is skipped otherwise.
func fingerprintFor(rec *record.OpError, refresh secret.Secret) string {
	if rec == nil {
		return ""
	}
	return refresh.Fingerprint()
}

// quotaBackoffActive reports whether a persisted quota error still stops
// quota checks of its account. Quota backoff never makes an account
// unusable by itself: its cached quota is evaluated instead.
func quotaBackoffActive(err *record.OpError, now time.Time) bool {
	return err != nil && fromMs(err.NextRetryAt).After(now)
}

// quotaStale reports whether a snapshot must be fetched again before it is
// trusted for routing (BEHAVIOUR.md §3.3): it is stale unless both
// standard windows exist and are younger than the check interval, and the
// model's scoped window (if any) is too. A window that blocks routing is
// also stale one minute after its reset, so an account comes back soon
// after its limit lifts rather than at the next interval.
func quotaStale(q *record.QuotaSnapshot, s Settings, model string, now time.Time) bool {
	if !quotaAgeFresh(q, s.QuotaCheckInterval, model, now) {
		return true
	}
	after := func(w *record.QuotaWindow, threshold float64) bool {
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
func quotaAgeFresh(q *record.QuotaSnapshot, interval time.Duration, model string, now time.Time) bool {
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

// quotaPassesPolicy reports whether a snapshot satisfies the minimumRemaining
// thresholds (upstream quotaSnapshotPassesPolicy). With quota checks
// disabled everything passes; a missing standard window passes only when
// failClosedOnUnknownQuota is false.
func quotaPassesPolicy(q *record.QuotaSnapshot, s Settings) bool {
	_, _, _, ok := policyFailure(q, s, time.Time{})
	return ok
}

// policyFailure returns why q fails the minimumRemaining policy (the
// reason and its display text) and when that ends, or ok. Windows are
// checked 5h first and the first decision wins, as upstream short-circuits.
func policyFailure(q *record.QuotaSnapshot, s Settings, now time.Time) (reason, string, time.Time, bool) {
	if !s.QuotaEnabled {
		return reasonUsable, "", time.Time{}, true
	}
	var five, seven *record.QuotaWindow
	if q != nil {
		five, seven = q.FiveHour, q.SevenDay
	}
	for _, w := range []struct {
		name      string
		w         *record.QuotaWindow
		threshold float64
	}{{"5h", five, s.MinimumRemaining.FiveHour}, {"7d", seven, s.MinimumRemaining.SevenDay}} {
		if w.w == nil || !finite(w.w.RemainingPercent) {
			if s.FailClosedOnUnknown {
				return reasonQuotaUnknown, "quota unknown (no " + w.name + " window)", time.Time{}, false
			}
			return reasonUsable, "", time.Time{}, true
		}
		if w.w.RemainingPercent < w.threshold {
			until, _ := futureReset(w.w.ResetsAt, now)
			return reasonBelowMinimum, fmt.Sprintf("%s quota below minimum (%s%% < %s%%)", w.name, pct(w.w.RemainingPercent), pct(w.threshold)), until, false
		}
	}
	return reasonUsable, "", time.Time{}, true
}

// modelScopeExhausted reports whether the model's scoped weekly window (for
// example "Fable only") is at or below 0 % remaining. An empty scoped list
// and a model without a scoped window are not exhausted.
func modelScopeExhausted(q *record.QuotaSnapshot, model string) bool {
	sw := scopedWindowFor(q, model)
	return sw != nil && finite(sw.RemainingPercent) && sw.RemainingPercent <= 0
}

// scopedWindowFor returns the scoped window that limits model, if any
// (upstream getScopedQuotaWindowForModel): Fable and Mythos models match by
// family name, others by their whole normalized id.
func scopedWindowFor(q *record.QuotaSnapshot, model string) *record.ScopedWindow {
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
func hasStandardWindows(q *record.QuotaSnapshot) bool {
	return q != nil && q.FiveHour != nil && q.SevenDay != nil &&
		finite(q.FiveHour.RemainingPercent) && finite(q.SevenDay.RemainingPercent)
}

// finite reports whether f is a number (not NaN, not an infinity).
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
