package policy

import (
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
)

func TestJudge(t *testing.T) {
	now := policyNow
	fresh := now.Add(-time.Minute)
	valid := msOf(now.Add(8 * time.Hour))
	gone := msOf(now.Add(-time.Second))
	yes, no := true, false
	refresh := secret.Secret("refresh-1")
	fp := refresh.Fingerprint()
	fallback := func(mut func(*Subject)) *Subject {
		a := &Subject{ID: "fb", Kind: KindOAuth, Order: 1, Enabled: true, Identity: "fb", HasCredential: true,
			Access: "access", Refresh: refresh, Expires: valid, Quota: snapQ(80, 80, fresh)}
		if mut != nil {
			mut(a)
		}
		return a
	}
	main := func(mut func(*Subject)) *Subject {
		a := &Subject{ID: "main", Kind: KindMain, Enabled: true, Identity: "main-uuid", HasCredential: true,
			Access: "main-access", Refresh: refresh, Expires: valid}
		if mut != nil {
			mut(a)
		}
		return a
	}
	s := Defaults()
	s.MinimumRemaining = Thresholds{FiveHour: 10}
	ks := s
	ks.Killswitch.Enabled = true
	routing := s
	routing.QuotaRouting = true
	explicit := s
	explicit.FailClosedExplicit = true
	view := Need{Purpose: ForView}
	ordered := Need{Purpose: ForOrdered, Replayable: true}
	fable := Need{Purpose: ForOrdered, Replayable: true, Model: "claude-fable-5"}
	keep := Need{Purpose: ForStickyKeep}
	take := Need{Purpose: ForStickyNew}
	quotaBackoff := &record.OpError{Message: "429", Status: 429, CheckedAt: msOf(now), NextRetryAt: msOf(now.Add(time.Minute))}
	// What core reads from a usage 503 and from a token-endpoint 503 with
	// a 5 min backoff (core's failureOf).
	usage503 := IOFailure{Failed: true, Message: "usage: HTTP 503", Transient: true}
	tokenDown := IOFailure{Failed: true, Message: "token: HTTP 503", Until: now.Add(5 * time.Minute)}

	tests := []struct {
		name   string
		a      *Subject
		s      Settings
		n      Need
		usable bool
		reason Reason
		until  time.Time
		settle SettleIO
		text   string
	}{
		{"healthy fallback", fallback(nil), s, view, true, ReasonUsable, time.Time{}, 0, ""},
		{"broken entry", fallback(func(a *Subject) { a.Problem = "no refresh token" }), s, view, false, ReasonEntryProblem, time.Time{}, 0, "no refresh token"},
		{"unknown account type is listed, never routed", fallback(func(a *Subject) { a.Kind = KindUnknown; a.Problem = "unknown account type x" }), s, ordered, false, ReasonEntryProblem, time.Time{}, 0, ""},
		{"disabled", fallback(func(a *Subject) { a.Enabled = false }), s, view, false, ReasonDisabled, time.Time{}, 0, "disabled"},
		{"main without credentials", main(func(a *Subject) { a.HasCredential = false }), s, ordered, false, ReasonNoCredentials, time.Time{}, 0, "main credentials not set"},
		{"permanent refresh failure", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, CheckedAt: msOf(now.Add(-25 * time.Hour)), NextRetryAt: msOf(now.Add(-time.Hour)), RefreshTokenFingerprint: fp}
		}), s, view, false, ReasonNeedsRelogin, time.Time{}, 0, "needs re-login"},
		{"legacy record: no status, 24 h backoff needs re-login", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "Refresh failed", CheckedAt: msOf(now.Add(-time.Hour)), NextRetryAt: msOf(now.Add(23 * time.Hour))}
		}), s, view, false, ReasonNeedsRelogin, time.Time{}, 0, ""},
		{"legacy record: network failure is not permanent", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "fetch failed", CheckedAt: msOf(now.Add(-time.Hour)), NextRetryAt: msOf(now.Add(23 * time.Hour))}
		}), s, view, true, ReasonUsable, time.Time{}, 0, ""},
		{"explicit permanent false wins over a 24 h backoff", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "exhausted", Permanent: &no, CheckedAt: msOf(now), NextRetryAt: msOf(now.Add(24 * time.Hour))}
		}), s, view, true, ReasonUsable, time.Time{}, 0, ""},
		{"permanent failure of an old refresh token is released", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, NextRetryAt: msOf(now.Add(time.Hour)), RefreshTokenFingerprint: "0123456789abcdef"}
		}), s, view, true, ReasonUsable, time.Time{}, 0, ""},
		{"refresh backoff while the token is due (case 37)", fallback(func(a *Subject) {
			a.Expires = gone
			a.RefreshError = &record.OpError{Message: "429", Status: 429, NextRetryAt: msOf(now.Add(10 * time.Minute)), AccountIdentity: "fb"}
		}), s, ordered, false, ReasonRefreshBackoff, now.Add(10 * time.Minute), 0, "refresh backoff"},
		{"refresh backoff with a valid token does not block", fallback(func(a *Subject) {
			a.RefreshError = &record.OpError{Message: "429", Status: 429, NextRetryAt: msOf(now.Add(10 * time.Minute)), AccountIdentity: "fb"}
		}), s, view, true, ReasonUsable, time.Time{}, 0, ""},
		{"a due token asks for a refresh", fallback(func(a *Subject) { a.Expires = msOf(now.Add(time.Hour)) }), s, ordered, true, ReasonUsable, time.Time{}, SettleRefresh, ""},
		{"a stale snapshot asks for a poll", fallback(func(a *Subject) { a.Quota = snapQ(80, 80, now.Add(-time.Hour)) }), s, ordered, true, ReasonUsable, time.Time{}, SettleQuota, ""},
		{"a poll in quota backoff is not asked for", fallback(func(a *Subject) { a.Quota = snapQ(80, 80, now.Add(-time.Hour)); a.QuotaError = quotaBackoff }), s, ordered, true, ReasonUsable, time.Time{}, 0, ""},
		{"below minimum until the 5h reset", fallback(func(a *Subject) { a.Quota = snapQ(5, 80, fresh) }), s, view, false, ReasonBelowMinimum,
			fresh.Add(2 * time.Hour).Truncate(time.Second), 0, "5h quota below minimum (5% < 10%)"},
		{"unknown quota fails closed until the quota backoff ends", fallback(func(a *Subject) { a.Quota = nil; a.QuotaError = quotaBackoff }), s, view, false, ReasonQuotaUnknown,
			now.Add(time.Minute), 0, "quota unknown (no 5h window)"},
		{"model scope spent", fallback(func(a *Subject) { a.Quota = snapQ(80, 80, fresh, scoped("Fable", 0, fresh, 30*time.Hour)) }), s, fable, false, ReasonModelScope,
			fresh.Add(30 * time.Hour).Truncate(time.Second), 0, "Fable weekly limit reached"},
		{"killswitch", fallback(func(a *Subject) { a.Quota = snapQ(80, 8, fresh) }), ks, view, false, ReasonKillswitch, fresh.Add(72 * time.Hour).Truncate(time.Second), 0, "killswitch: 7d 8% < 10%"},
		{"transient poll failure trusts the cached snapshot", fallback(func(a *Subject) { a.Tried.Quota = usage503 }), s, ordered, true, ReasonUsable, time.Time{}, 0, ""},
		{"transient poll failure with a failing cache excludes", fallback(func(a *Subject) { a.Quota = snapQ(5, 80, fresh); a.Tried.Quota = usage503 }), s, ordered, false, ReasonQuotaCheckFailed, time.Time{}, 0, ""},
		{"refresh failure refuses a fallback", fallback(func(a *Subject) { a.Expires = gone; a.Tried.Refresh = tokenDown }), s, ordered, false, ReasonRefreshFailed, now.Add(5 * time.Minute), 0, ""},
		{"refresh failure of main refuses main", main(func(a *Subject) { a.Expires = gone; a.Tried.Refresh = tokenDown }), s, ordered, false, ReasonRefreshFailed, now.Add(5 * time.Minute), 0, ""},
		{"api route is reserved in ordered routing", &Subject{ID: "api", Kind: KindAPI, Enabled: true}, s, ordered, false, ReasonAPIReserved, time.Time{}, 0, ""},
		{"api route serves on confirmed main exhaustion", &Subject{ID: "api", Kind: KindAPI, Enabled: true}, s, Need{Purpose: ForOrdered, IncludeAPI: true}, true, ReasonUsable, time.Time{}, 0, ""},
		{"api route takes no sticky session", &Subject{ID: "api", Kind: KindAPI, Enabled: true}, s, take, false, ReasonNotSticky, time.Time{}, 0, ""},

		// Main on default settings: unknown quota never refuses it.
		{"main with unknown quota and a failing poll serves by default", main(func(a *Subject) { a.QuotaError = quotaBackoff }), s, ordered, true, ReasonUsable, time.Time{}, 0, ""},
		{"main fails closed only when failClosedOnUnknownQuota is explicitly true", main(func(a *Subject) { a.QuotaError = quotaBackoff }), explicit, ordered, false, ReasonMainQuotaBackedOff, now.Add(time.Minute), 0, ""},
		{"main below minimum without quota routing serves", main(func(a *Subject) { a.Quota = snapQ(5, 50, fresh) }), s, ordered, true, ReasonUsable, time.Time{}, 0, ""},
		{"main below minimum with quota routing is the last resort", main(func(a *Subject) { a.Quota = snapQ(5, 50, fresh) }), routing, ordered, true, ReasonBelowMinimum, fresh.Add(2 * time.Hour).Truncate(time.Second), 0, "main 5h quota below minimum (5% < 10%)"},
		{"main with quota routing and no snapshot asks for a poll", main(nil), routing, ordered, true, ReasonUsable, time.Time{}, SettleQuota, ""},
		{"main quota is not polled for a streamed request", main(nil), routing, Need{Purpose: ForOrdered}, true, ReasonUsable, time.Time{}, 0, ""},
		{"main refresh backoff with an expired token", main(func(a *Subject) {
			a.Expires = gone
			a.RefreshError = &record.OpError{Status: 429, NextRetryAt: msOf(now.Add(time.Minute))}
		}), s, ordered, false, ReasonRefreshBackoff, now.Add(time.Minute), 0, ""},

		// A 429 that named spent windows.
		{"5h spent by a 429 until its reset", main(func(a *Subject) { a.Spent = &record.SpentWindows{FiveHour: msOf(now.Add(2 * time.Hour))} }), s, ordered, false, ReasonWindowSpent, now.Add(2 * time.Hour), 0, ""},
		{"the later of two spent windows ends it", fallback(func(a *Subject) {
			a.Spent = &record.SpentWindows{FiveHour: msOf(now.Add(2 * time.Hour)), SevenDay: msOf(now.Add(50 * time.Hour))}
		}), s, view, false, ReasonWindowSpent, now.Add(50 * time.Hour), 0, ""},
		{"a past reset releases the account", fallback(func(a *Subject) { a.Spent = &record.SpentWindows{FiveHour: msOf(now.Add(-time.Second))} }), s, ordered, true, ReasonUsable, time.Time{}, 0, ""},
		{"a sticky session holds on a 5h reset within 15 minutes", fallback(func(a *Subject) { a.Spent = &record.SpentWindows{FiveHour: msOf(now.Add(10 * time.Minute))} }), s, keep, true, ReasonResetsShortly, now.Add(10 * time.Minute), 0, ""},

		// Sticky sessions.
		{"sticky keep with stale quota keeps and asks for a poll", fallback(func(a *Subject) { a.Quota = snapQ(50, 50, now.Add(-time.Hour)) }), s, keep, true, ReasonUsable, time.Time{}, SettleQuota, ""},
		{"sticky keep migrates on a spent 7d window", fallback(func(a *Subject) { a.Quota = snapQ(50, 0, fresh) }), s, keep, false, ReasonWindowSpent, fresh.Add(72 * time.Hour).Truncate(time.Second), 0, "seven-day quota exhausted"},
		{"sticky keep migrates below minimum", fallback(func(a *Subject) { a.Quota = snapQ(5, 50, fresh) }), s, keep, false, ReasonBelowMinimum, fresh.Add(2 * time.Hour).Truncate(time.Second), 0, ""},
		{"sticky main is blocked by any active refresh backoff", main(func(a *Subject) {
			a.RefreshError = &record.OpError{Status: 429, NextRetryAt: msOf(now.Add(time.Minute))}
		}), s, keep, false, ReasonRefreshBackoff, now.Add(time.Minute), 0, ""},
		{"sticky needs an access token", fallback(func(a *Subject) { a.Access = "" }), s, take, false, ReasonNoCredentials, time.Time{}, 0, "no access token"},
		{"new session refuses unknown quota under failClosed", fallback(func(a *Subject) { a.Quota = nil }), s, take, false, ReasonQuotaUnknown, time.Time{}, SettleQuota, ""},
		{"new session refuses a 5h window about to reset", fallback(func(a *Subject) {
			a.Quota = &record.QuotaSnapshot{FiveHour: &record.QuotaWindow{RemainingPercent: 0, ResetsAt: now.Add(5 * time.Minute).Format(time.RFC3339), CheckedAt: msOf(fresh)}, SevenDay: win(50, fresh, 0)}
		}), s, take, false, ReasonBelowMinimum, now.Add(5 * time.Minute), 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := Judge(tc.s, tc.a, tc.n, now)
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
	for r := ReasonUsable; r <= ReasonResetsShortly; r++ {
		assert.NotEqual(t, "unknown reason", r.String(), "reason %d has a display text", r)
	}
	assert.Equal(t, "unknown reason", Reason(200).String())
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

func TestStickyDecision(t *testing.T) {
	now := policyNow
	at := now.Add(-time.Minute)
	five := func(remaining float64, reset time.Duration) *record.QuotaSnapshot {
		return &record.QuotaSnapshot{FiveHour: &record.QuotaWindow{RemainingPercent: remaining, ResetsAt: now.Add(reset).Format(time.RFC3339), CheckedAt: msOf(at)}, SevenDay: win(50, at, 0)}
	}
	tests := []struct {
		name  string
		q     *record.QuotaSnapshot
		model string
		want  string // retain, hold or migrate
		why   Reason
	}{
		{"unknown retains", nil, "", "retain", ReasonUsable},
		{"not exhausted retains", snapQ(10, 10, at), "", "retain", ReasonUsable},
		{"model scope exhausted migrates", snapQ(50, 50, at, scoped("Fable", 0, at, time.Hour)), "claude-fable-5", "migrate", ReasonModelScope},
		{"seven-day exhausted migrates", snapQ(50, 0, at), "", "migrate", ReasonWindowSpent},
		{"five-hour resetting within 15 min holds", five(0, 14*time.Minute), "", "hold", ReasonResetsShortly},
		{"five-hour resetting exactly at 15 min holds", five(0, 15*time.Minute), "", "hold", ReasonResetsShortly},
		{"five-hour resetting later migrates", five(0, 16*time.Minute), "", "migrate", ReasonWindowSpent},
		{"five-hour with a past reset migrates", five(0, -time.Minute), "", "migrate", ReasonWindowSpent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := StickyDecision(tc.q, tc.model, now)
			got := "retain"
			switch {
			case d.Hold:
				got = "hold"
			case !d.Usable:
				got = "migrate"
			}
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.why, d.Reason)
		})
	}
}
