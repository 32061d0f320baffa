package policy

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// StickyHoldWindow is how close a five-hour reset must be for sticky
// routing to hold a session instead of migrating it.
const StickyHoldWindow = 15 * time.Minute

// networkRefreshHeal caps how long a network-only refresh failure latches,
// which heals old 24 h latches written for network errors.
const networkRefreshHeal = 5 * time.Minute

// RefreshBackoffActive reports whether a persisted refresh error still
// latches the account's token refresh (upstream RefreshBackoffActive). The
// latch is bound to the account identity (the account id, or mainAccountId
// for main) and to the fingerprint of the refresh token that failed: a
// rotated or re-logged refresh token releases it at once.
//
// # Notes
//
// A record of a network failure (no HTTP status) latches at most 5 minutes
// after it was written, whatever its nextRetryAt says.
func RefreshBackoffActive(err *record.OpError, identity string, now time.Time, currentFingerprint string) bool {
	_, ok := RefreshBackoffUntil(err, identity, now, currentFingerprint)
	return ok
}

// RefreshBackoffUntil is when the refresh backoff of err ends for the
// account's identity and refresh token fingerprint fp; false when it does
// not hold (expired, healed for a network failure, or bound to another
// identity or token).
func RefreshBackoffUntil(err *record.OpError, identity string, now time.Time, fp string) (time.Time, bool) {
	if err == nil || err.NextRetryAt == 0 {
		return time.Time{}, false
	}
	retryAt := err.NextRetryAt
	if err.LooksLikeNetwork() {
		if heal := err.CheckedAt + networkRefreshHeal.Milliseconds(); heal < retryAt {
			retryAt = heal
		}
	}
	until := time.UnixMilli(retryAt)
	if !until.After(now) {
		return time.Time{}, false
	}
	if !RefreshRecordBinds(err, identity, fp) {
		return time.Time{}, false
	}
	return until, true
}

// RefreshRecordBinds reports whether a refresh error belongs to the
// account's current identity and refresh token.
func RefreshRecordBinds(err *record.OpError, identity, fp string) bool {
	if err.RefreshTokenFingerprint != "" && fp != "" && err.RefreshTokenFingerprint != fp {
		return false
	}
	if err.AccountIdentity == "" || identity == "" {
		return true
	}
	return err.AccountIdentity == identity
}

// FingerprintFor is the refresh token's fingerprint when there is a
// record to compare it with; hashing is skipped otherwise.
func FingerprintFor(rec *record.OpError, refresh secret.Secret) string {
	if rec == nil {
		return ""
	}
	return refresh.Fingerprint()
}

// QuotaBackoffActive reports whether a persisted quota error still stops
// quota checks of its account. Quota backoff never makes an account
// unusable by itself: its cached quota is evaluated instead.
func QuotaBackoffActive(err *record.OpError, now time.Time) bool {
	return err != nil && time.UnixMilli(err.NextRetryAt).After(now)
}

// QuotaStale reports whether a snapshot must be fetched again before it is
// trusted for routing (BEHAVIOUR.md §3.3): it is stale unless both
// standard windows exist and are younger than the check interval, and the
// model's scoped window (if any) is too. A window that blocks routing is
// also stale one minute after its reset, so an account comes back soon
// after its limit lifts rather than at the next interval.
func QuotaStale(q *record.QuotaSnapshot, s Settings, model string, now time.Time) bool {
	if !QuotaAgeFresh(q, s.QuotaCheckInterval, model, now) {
		return true
	}
	after := func(w *record.QuotaWindow, threshold float64) bool {
		if w.RemainingPercent >= threshold && w.RemainingPercent > 0 {
			return false
		}
		t, ok := ParseReset(w.ResetsAt)
		return ok && !now.Before(t.Add(time.Minute))
	}
	if after(q.FiveHour, s.MinimumRemaining.FiveHour) || after(q.SevenDay, s.MinimumRemaining.SevenDay) {
		return true
	}
	if sw := ScopedWindowFor(q, model); sw != nil && sw.RemainingPercent <= 0 {
		if t, ok := ParseReset(sw.ResetsAt); ok && !now.Before(t.Add(time.Minute)) {
			return true
		}
	}
	return false
}

// QuotaAgeFresh is upstream's sticky freshness: both standard windows exist
// with an age below the interval, and so does the model's scoped window.
func QuotaAgeFresh(q *record.QuotaSnapshot, interval time.Duration, model string, now time.Time) bool {
	if q == nil || q.FiveHour == nil || q.SevenDay == nil {
		return false
	}
	if interval < time.Minute {
		interval = time.Minute
	}
	limit := now.UnixMilli() - interval.Milliseconds()
	if q.FiveHour.CheckedAt <= limit || q.SevenDay.CheckedAt <= limit {
		return false
	}
	if sw := ScopedWindowFor(q, model); sw != nil && sw.CheckedAt <= limit {
		return false
	}
	return true
}

// QuotaPassesPolicy reports whether a snapshot satisfies the minimumRemaining
// thresholds (upstream quotaSnapshotPassesPolicy). With quota checks
// disabled everything passes; a missing standard window passes only when
// failClosedOnUnknownQuota is false.
func QuotaPassesPolicy(q *record.QuotaSnapshot, s Settings) bool {
	_, _, _, ok := PolicyFailure(q, s, time.Time{})
	return ok
}

// PolicyFailure returns why q fails the minimumRemaining policy (the
// reason and its display text) and when that ends, or ok. Windows are
// checked 5h first and the first decision wins, as upstream short-circuits.
func PolicyFailure(q *record.QuotaSnapshot, s Settings, now time.Time) (Reason, string, time.Time, bool) {
	if !s.QuotaEnabled {
		return ReasonUsable, "", time.Time{}, true
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
		if w.w == nil || !Finite(w.w.RemainingPercent) {
			if s.FailClosedOnUnknown {
				return ReasonQuotaUnknown, "quota unknown (no " + w.name + " window)", time.Time{}, false
			}
			return ReasonUsable, "", time.Time{}, true
		}
		if w.w.RemainingPercent < w.threshold {
			until, _ := FutureReset(w.w.ResetsAt, now)
			return ReasonBelowMinimum, fmt.Sprintf("%s quota below minimum (%s%% < %s%%)", w.name, pct(w.w.RemainingPercent), pct(w.threshold)), until, false
		}
	}
	return ReasonUsable, "", time.Time{}, true
}

// ModelScopeExhausted reports whether the model's scoped weekly window (for
// example "Fable only") is at or below 0 % remaining. An empty scoped list
// and a model without a scoped window are not exhausted.
func ModelScopeExhausted(q *record.QuotaSnapshot, model string) bool {
	sw := ScopedWindowFor(q, model)
	return sw != nil && Finite(sw.RemainingPercent) && sw.RemainingPercent <= 0
}

// ScopedWindowFor returns the scoped window that limits model, if any
// (upstream getScopedQuotaWindowForModel): Fable and Mythos models match by
// family name, others by their whole normalized id.
func ScopedWindowFor(q *record.QuotaSnapshot, model string) *record.ScopedWindow {
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
	key := NormalizeModel(model)
	switch {
	case strings.Contains(key, "fable"):
		return "fable"
	case strings.Contains(key, "mythos"):
		return "mythos"
	}
	return key
}

// NormalizeModel lowercases s and keeps only ASCII letters and digits.
func NormalizeModel(s string) string {
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

// normalizedContains reports whether NormalizeModel(s) contains key,
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

// ModelFamily is the sticky family of a model: "fable" for Fable and
// Mythos 5, "opus" for Opus, else "general".
func ModelFamily(model string) string {
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

// ParseReset parses a window's ISO-8601 resetsAt.
func ParseReset(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	return t, true
}

// FutureReset returns a window's reset if it is after now (or any valid
// reset when now is zero).
func FutureReset(s string, now time.Time) (time.Time, bool) {
	t, ok := ParseReset(s)
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

// HasStandardWindows reports whether q knows both the 5h and 7d windows.
func HasStandardWindows(q *record.QuotaSnapshot) bool {
	return q != nil && q.FiveHour != nil && q.SevenDay != nil &&
		Finite(q.FiveHour.RemainingPercent) && Finite(q.SevenDay.RemainingPercent)
}

// Finite reports whether f is a number (not NaN, not an infinity).
func Finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
