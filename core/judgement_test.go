package core

import (
	"errors"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
)

func TestJudge(t *testing.T) {
	now := policyNow
	fresh := now.Add(-time.Minute)
	valid := epochMs(now.Add(8 * time.Hour))
	gone := epochMs(now.Add(-time.Second))
	yes, no := true, false
	refresh := secret.Secret("refresh-1")
	fp := refresh.Fingerprint()
	fallback := func(mut func(*subject)) *subject {
		a := &subject{ID: "fb", Kind: KindOAuth, Order: 1, Enabled: true, Identity: "fb", HasCredential: true,
			Access: "access", Refresh: refresh, Expires: valid, Quota: snapQ(80, 80, fresh)}
		if mut != nil {
			mut(a)
		}
		return a
	}
	main := func(mut func(*subject)) *subject {
		a := &subject{ID: MainAccountID, Kind: KindMain, Enabled: true, Identity: "main-uuid", HasCredential: true,
			Access: "main-access", Refresh: refresh, Expires: valid}
		if mut != nil {
			mut(a)
		}
		return a
	}
	s := defaultSettings()
	s.MinimumRemaining = policy.Thresholds{FiveHour: 10}
	ks := s
	ks.Killswitch.Enabled = true
	routing := s
	routing.QuotaRouting = true
	explicit := s
	explicit.FailClosedExplicit = true
	view := need{Purpose: forView}
	ordered := need{Purpose: forOrdered, Replayable: true}
	fable := need{Purpose: forOrdered, Replayable: true, Model: "claude-fable-5"}
	keep := need{Purpose: forStickyKeep}
	take := need{Purpose: forStickyNew}
	quotaBackoff := &record.OpError{Message: "429", Status: 429, CheckedAt: epochMs(now), NextRetryAt: epochMs(now.Add(time.Minute))}
	usage503 := &UpstreamError{Failure: verdict.Failure{Source: verdict.SourceUsage, Status: 503}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}}
	tokenDown := &UpstreamError{Failure: verdict.Failure{Source: verdict.SourceToken, Status: 503}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}, Until: now.Add(5 * time.Minute)}

	tests := []struct {
		name   string
		a      *subject
		s      policy.Settings
		n      need
		usable bool
		reason policy.Reason
		until  time.Time
		settle settleIO
		text   string
	}{
		{"healthy fallback", fallback(nil), s, view, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"broken entry", fallback(func(a *subject) { a.Problem = "no refresh token" }), s, view, false, policy.ReasonEntryProblem, time.Time{}, 0, "no refresh token"},
		{"unknown account type is listed, never routed", fallback(func(a *subject) { a.Kind = KindUnknown; a.Problem = "unknown account type x" }), s, ordered, false, policy.ReasonEntryProblem, time.Time{}, 0, ""},
		{"disabled", fallback(func(a *subject) { a.Enabled = false }), s, view, false, policy.ReasonDisabled, time.Time{}, 0, "disabled"},
		{"main without credentials", main(func(a *subject) { a.HasCredential = false }), s, ordered, false, policy.ReasonNoCredentials, time.Time{}, 0, "main credentials not set"},
		{"permanent refresh failure", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, CheckedAt: epochMs(now.Add(-25 * time.Hour)), NextRetryAt: epochMs(now.Add(-time.Hour)), RefreshTokenFingerprint: fp}
		}), s, view, false, policy.ReasonNeedsRelogin, time.Time{}, 0, "needs re-login"},
		{"legacy record: no status, 24 h backoff needs re-login", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "Refresh failed", CheckedAt: epochMs(now.Add(-time.Hour)), NextRetryAt: epochMs(now.Add(23 * time.Hour))}
		}), s, view, false, policy.ReasonNeedsRelogin, time.Time{}, 0, ""},
		{"legacy record: network failure is not permanent", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "fetch failed", CheckedAt: epochMs(now.Add(-time.Hour)), NextRetryAt: epochMs(now.Add(23 * time.Hour))}
		}), s, view, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"explicit permanent false wins over a 24 h backoff", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "exhausted", Permanent: &no, CheckedAt: epochMs(now), NextRetryAt: epochMs(now.Add(24 * time.Hour))}
		}), s, view, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"permanent failure of an old refresh token is released", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, NextRetryAt: epochMs(now.Add(time.Hour)), RefreshTokenFingerprint: "0123456789abcdef"}
		}), s, view, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"refresh backoff while the token is due (case 37)", fallback(func(a *subject) {
			a.Expires = gone
			a.RefreshError = &record.OpError{Message: "429", Status: 429, NextRetryAt: epochMs(now.Add(10 * time.Minute)), AccountIdentity: "fb"}
		}), s, ordered, false, policy.ReasonRefreshBackoff, now.Add(10 * time.Minute), 0, "refresh backoff"},
		{"refresh backoff with a valid token does not block", fallback(func(a *subject) {
			a.RefreshError = &record.OpError{Message: "429", Status: 429, NextRetryAt: epochMs(now.Add(10 * time.Minute)), AccountIdentity: "fb"}
		}), s, view, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"a due token asks for a refresh", fallback(func(a *subject) { a.Expires = epochMs(now.Add(time.Hour)) }), s, ordered, true, policy.ReasonUsable, time.Time{}, settleRefresh, ""},
		{"a stale snapshot asks for a poll", fallback(func(a *subject) { a.Quota = snapQ(80, 80, now.Add(-time.Hour)) }), s, ordered, true, policy.ReasonUsable, time.Time{}, settleQuota, ""},
		{"a poll in quota backoff is not asked for", fallback(func(a *subject) { a.Quota = snapQ(80, 80, now.Add(-time.Hour)); a.QuotaError = quotaBackoff }), s, ordered, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"below minimum until the 5h reset", fallback(func(a *subject) { a.Quota = snapQ(5, 80, fresh) }), s, view, false, policy.ReasonBelowMinimum,
			fresh.Add(2 * time.Hour).Truncate(time.Second), 0, "5h quota below minimum (5% < 10%)"},
		{"unknown quota fails closed until the quota backoff ends", fallback(func(a *subject) { a.Quota = nil; a.QuotaError = quotaBackoff }), s, view, false, policy.ReasonQuotaUnknown,
			now.Add(time.Minute), 0, "quota unknown (no 5h window)"},
		{"model scope spent", fallback(func(a *subject) { a.Quota = snapQ(80, 80, fresh, scoped("Fable", 0, fresh, 30*time.Hour)) }), s, fable, false, policy.ReasonModelScope,
			fresh.Add(30 * time.Hour).Truncate(time.Second), 0, "Fable weekly limit reached"},
		{"killswitch", fallback(func(a *subject) { a.Quota = snapQ(80, 8, fresh) }), ks, view, false, policy.ReasonKillswitch, fresh.Add(72 * time.Hour).Truncate(time.Second), 0, "killswitch: 7d 8% < 10%"},
		{"transient poll failure trusts the cached snapshot", fallback(func(a *subject) { a.Tried.Quota = usage503 }), s, ordered, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"transient poll failure with a failing cache excludes", fallback(func(a *subject) { a.Quota = snapQ(5, 80, fresh); a.Tried.Quota = usage503 }), s, ordered, false, policy.ReasonQuotaCheckFailed, time.Time{}, 0, ""},
		{"refresh failure refuses a fallback", fallback(func(a *subject) { a.Expires = gone; a.Tried.Refresh = tokenDown }), s, ordered, false, policy.ReasonRefreshFailed, now.Add(5 * time.Minute), 0, ""},
		{"refresh failure of main refuses main", main(func(a *subject) { a.Expires = gone; a.Tried.Refresh = tokenDown }), s, ordered, false, policy.ReasonRefreshFailed, now.Add(5 * time.Minute), 0, ""},
		{"api route is reserved in ordered routing", &subject{ID: "api", Kind: KindAPI, Enabled: true}, s, ordered, false, policy.ReasonAPIReserved, time.Time{}, 0, ""},
		{"api route serves on confirmed main exhaustion", &subject{ID: "api", Kind: KindAPI, Enabled: true}, s, need{Purpose: forOrdered, IncludeAPI: true}, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"api route takes no sticky session", &subject{ID: "api", Kind: KindAPI, Enabled: true}, s, take, false, policy.ReasonNotSticky, time.Time{}, 0, ""},

		// Main on default settings: unknown quota never refuses it.
		{"main with unknown quota and a failing poll serves by default", main(func(a *subject) { a.QuotaError = quotaBackoff }), s, ordered, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"main fails closed only when failClosedOnUnknownQuota is explicitly true", main(func(a *subject) { a.QuotaError = quotaBackoff }), explicit, ordered, false, policy.ReasonMainQuotaBackedOff, now.Add(time.Minute), 0, ""},
		{"main below minimum without quota routing serves", main(func(a *subject) { a.Quota = snapQ(5, 50, fresh) }), s, ordered, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"main below minimum with quota routing is the last resort", main(func(a *subject) { a.Quota = snapQ(5, 50, fresh) }), routing, ordered, true, policy.ReasonBelowMinimum, fresh.Add(2 * time.Hour).Truncate(time.Second), 0, "main 5h quota below minimum (5% < 10%)"},
		{"main with quota routing and no snapshot asks for a poll", main(nil), routing, ordered, true, policy.ReasonUsable, time.Time{}, settleQuota, ""},
		{"main quota is not polled for a streamed request", main(nil), routing, need{Purpose: forOrdered}, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"main refresh backoff with an expired token", main(func(a *subject) {
			a.Expires = gone
			a.RefreshError = &record.OpError{Status: 429, NextRetryAt: epochMs(now.Add(time.Minute))}
		}), s, ordered, false, policy.ReasonRefreshBackoff, now.Add(time.Minute), 0, ""},

		// A 429 that named spent windows.
		{"5h spent by a 429 until its reset", main(func(a *subject) { a.Spent = &record.SpentWindows{FiveHour: epochMs(now.Add(2 * time.Hour))} }), s, ordered, false, policy.ReasonWindowSpent, now.Add(2 * time.Hour), 0, ""},
		{"the later of two spent windows ends it", fallback(func(a *subject) {
			a.Spent = &record.SpentWindows{FiveHour: epochMs(now.Add(2 * time.Hour)), SevenDay: epochMs(now.Add(50 * time.Hour))}
		}), s, view, false, policy.ReasonWindowSpent, now.Add(50 * time.Hour), 0, ""},
		{"a past reset releases the account", fallback(func(a *subject) { a.Spent = &record.SpentWindows{FiveHour: epochMs(now.Add(-time.Second))} }), s, ordered, true, policy.ReasonUsable, time.Time{}, 0, ""},
		{"a sticky session holds on a 5h reset within 15 minutes", fallback(func(a *subject) { a.Spent = &record.SpentWindows{FiveHour: epochMs(now.Add(10 * time.Minute))} }), s, keep, true, policy.ReasonResetsShortly, now.Add(10 * time.Minute), 0, ""},

		// Sticky sessions.
		{"sticky keep with stale quota keeps and asks for a poll", fallback(func(a *subject) { a.Quota = snapQ(50, 50, now.Add(-time.Hour)) }), s, keep, true, policy.ReasonUsable, time.Time{}, settleQuota, ""},
		{"sticky keep migrates on a spent 7d window", fallback(func(a *subject) { a.Quota = snapQ(50, 0, fresh) }), s, keep, false, policy.ReasonWindowSpent, fresh.Add(72 * time.Hour).Truncate(time.Second), 0, "seven-day quota exhausted"},
		{"sticky keep migrates below minimum", fallback(func(a *subject) { a.Quota = snapQ(5, 50, fresh) }), s, keep, false, policy.ReasonBelowMinimum, fresh.Add(2 * time.Hour).Truncate(time.Second), 0, ""},
		{"sticky main is blocked by any active refresh backoff", main(func(a *subject) {
			a.RefreshError = &record.OpError{Status: 429, NextRetryAt: epochMs(now.Add(time.Minute))}
		}), s, keep, false, policy.ReasonRefreshBackoff, now.Add(time.Minute), 0, ""},
		{"sticky needs an access token", fallback(func(a *subject) { a.Access = "" }), s, take, false, policy.ReasonNoCredentials, time.Time{}, 0, "no access token"},
		{"new session refuses unknown quota under failClosed", fallback(func(a *subject) { a.Quota = nil }), s, take, false, policy.ReasonQuotaUnknown, time.Time{}, settleQuota, ""},
		{"new session refuses a 5h window about to reset", fallback(func(a *subject) {
			a.Quota = &record.QuotaSnapshot{FiveHour: &record.QuotaWindow{RemainingPercent: 0, ResetsAt: now.Add(5 * time.Minute).Format(time.RFC3339), CheckedAt: epochMs(fresh)}, SevenDay: win(50, fresh, 0)}
		}), s, take, false, policy.ReasonBelowMinimum, now.Add(5 * time.Minute), 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := judge(tc.s, tc.a, tc.n, now)
			assert.Equal(t, tc.usable, j.Usable, j.Text())
			assert.Equal(t, tc.reason, j.Reason, "reason %s (%s)", j.Reason, j.Text())
			assert.True(t, tc.until.Equal(j.Until), "until %v, want %v", j.Until, tc.until)
			assert.Equal(t, tc.settle, j.Settle)
			if tc.text != "" {
				assert.Equal(t, tc.text, j.Text())
			}
		})
	}
}

func TestReasonString(t *testing.T) {
	for r := policy.ReasonUsable; r <= policy.ReasonResetsShortly; r++ {
		assert.NotEqual(t, "unknown reason", r.String(), "reason %d has a display text", r)
	}
	assert.Equal(t, "unknown reason", policy.Reason(200).String())
}

func TestRouteKindText(t *testing.T) {
	for _, k := range []RouteKind{KindMain, KindOAuth, KindAPI, KindUnknown} {
		b, err := k.MarshalText()
		assert.NoError(t, err)
		var back RouteKind
		assert.NoError(t, back.UnmarshalText(b))
		assert.Equal(t, k, back)
	}
	var k RouteKind
	assert.NoError(t, k.UnmarshalText([]byte("bogus")))
	assert.Equal(t, KindUnknown, k)
}

func TestTransientQuotaError(t *testing.T) {
	assert.True(t, transientQuotaError(&UpstreamError{Failure: verdict.Failure{Source: verdict.SourceUsage}, Verdict: verdict.Verdict{Class: verdict.ClassRateLimited}}))
	assert.False(t, transientQuotaError(&UpstreamError{Failure: verdict.Failure{Source: verdict.SourceToken}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}}))
	assert.True(t, transientQuotaError(&BackoffError{Kind: ErrQuotaBackoff}))
	assert.True(t, transientQuotaError(ErrInProgress))
	assert.False(t, transientQuotaError(errors.New("other")))
}
