package policy

import (
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
)

var policyNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func msOf(t time.Time) int64 { return t.UnixMilli() }

func win(remaining float64, checked time.Time, reset time.Duration) *record.QuotaWindow {
	w := &record.QuotaWindow{UsedPercent: 100 - remaining, RemainingPercent: remaining, CheckedAt: msOf(checked)}
	if reset != 0 {
		w.ResetsAt = checked.Add(reset).UTC().Format(time.RFC3339)
	}
	return w
}

func scoped(name string, remaining float64, checked time.Time, reset time.Duration) record.ScopedWindow {
	w := win(remaining, checked, reset)
	return record.ScopedWindow{ID: "claude-weekly-scoped-" + NormalizeModel(name), Title: name + " only", ModelName: name,
		UsedPercent: w.UsedPercent, RemainingPercent: w.RemainingPercent, ResetsAt: w.ResetsAt, CheckedAt: w.CheckedAt}
}

func snapQ(five, seven float64, checked time.Time, sc ...record.ScopedWindow) *record.QuotaSnapshot {
	return &record.QuotaSnapshot{FiveHour: win(five, checked, 2*time.Hour), SevenDay: win(seven, checked, 72*time.Hour), Scoped: sc, CheckedAt: msOf(checked)}
}

func TestQuotaPassesPolicy(t *testing.T) {
	base := Defaults()
	withMin := base
	withMin.MinimumRemaining = Thresholds{FiveHour: 10, SevenDay: 20}
	open := withMin
	open.FailClosedOnUnknown = false
	off := withMin
	off.QuotaEnabled = false
	tests := []struct {
		name string
		q    *record.QuotaSnapshot
		s    Settings
		want bool
	}{
		{"no snapshot fails closed by default", nil, base, false},
		{"no snapshot passes when fail-open", nil, open, true},
		{"quota disabled passes everything", snapQ(0, 0, policyNow), off, true},
		{"above thresholds", snapQ(50, 50, policyNow), withMin, true},
		{"at threshold passes", snapQ(10, 20, policyNow), withMin, true},
		{"5h below minimum", snapQ(5, 50, policyNow), withMin, false},
		{"7d below minimum", snapQ(50, 19, policyNow), withMin, false},
		{"missing 7d fails closed", &record.QuotaSnapshot{FiveHour: win(50, policyNow, 0)}, withMin, false},
		{"fail-open short-circuits on missing 5h", &record.QuotaSnapshot{SevenDay: win(1, policyNow, 0)}, open, true},
		{"zero thresholds pass an exhausted window", snapQ(0, 0, policyNow), base, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, QuotaPassesPolicy(tc.q, tc.s))
		})
	}
}

func TestModelScopeExhausted(t *testing.T) {
	q := snapQ(50, 50, policyNow, scoped("Fable", 0, policyNow, 48*time.Hour))
	tests := []struct {
		name  string
		q     *record.QuotaSnapshot
		model string
		want  bool
	}{
		{"fable model matches the Fable window", q, "claude-fable-5", true},
		{"case and punctuation do not matter", q, "Claude_FABLE 5", true},
		{"other model does not match", q, "claude-opus-4-7", false},
		{"no model never matches", q, "", false},
		{"empty scoped list is not exhausted", snapQ(50, 50, policyNow, []record.ScopedWindow{}...), "claude-fable-5", false},
		{"remaining scope is not exhausted", snapQ(50, 50, policyNow, scoped("Fable", 3, policyNow, 0)), "claude-fable-5", false},
		{"mythos window matches by family", snapQ(50, 50, policyNow, scoped("Mythos", 0, policyNow, 0)), "claude-mythos-5-preview", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, ModelScopeExhausted(tc.q, tc.model))
		})
	}
}

func TestQuotaStale(t *testing.T) {
	s := Defaults() // 5 min interval
	s.MinimumRemaining = Thresholds{FiveHour: 10}
	old := policyNow.Add(-5 * time.Minute)
	recent := policyNow.Add(-4 * time.Minute)
	blocked := &record.QuotaSnapshot{FiveHour: win(3, recent, 3*time.Minute), SevenDay: win(50, recent, 0)}
	tests := []struct {
		name  string
		q     *record.QuotaSnapshot
		model string
		want  bool
	}{
		{"nil is stale", nil, "", true},
		{"missing window is stale", &record.QuotaSnapshot{FiveHour: win(50, policyNow, 0)}, "", true},
		{"younger than the interval is fresh", snapQ(50, 50, recent), "", false},
		{"as old as the interval is stale", snapQ(50, 50, old), "", true},
		{"old scoped window of the model is stale", &record.QuotaSnapshot{FiveHour: win(50, recent, 0), SevenDay: win(50, recent, 0), Scoped: []record.ScopedWindow{scoped("Fable", 40, old, 0)}}, "claude-fable-5", true},
		{"old scoped window of another model is ignored", &record.QuotaSnapshot{FiveHour: win(50, recent, 0), SevenDay: win(50, recent, 0), Scoped: []record.ScopedWindow{scoped("Fable", 40, old, 0)}}, "claude-opus-4", false},
		{"blocked window is stale a minute after its reset", blocked, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, QuotaStale(tc.q, s, tc.model, policyNow))
		})
	}
}

func TestRefreshBackoffActive(t *testing.T) {
	fp := secret.Secret("refresh-1").Fingerprint()
	rec := func(mut func(*record.OpError)) *record.OpError {
		e := &record.OpError{Message: "Claude OAuth refresh failed: 429", Status: 429, CheckedAt: msOf(policyNow.Add(-time.Minute)),
			NextRetryAt: msOf(policyNow.Add(10 * time.Minute)), AccountIdentity: "fb", RefreshTokenFingerprint: fp}
		if mut != nil {
			mut(e)
		}
		return e
	}
	tests := []struct {
		name     string
		err      *record.OpError
		identity string
		fp       string
		want     bool
	}{
		{"no error", nil, "fb", fp, false},
		{"active and bound", rec(nil), "fb", fp, true},
		{"expired", rec(func(e *record.OpError) { e.NextRetryAt = msOf(policyNow) }), "fb", fp, false},
		{"new refresh token releases the latch", rec(nil), "fb", secret.Secret("refresh-2").Fingerprint(), false},
		{"other identity", rec(nil), "other", fp, false},
		{"record without identity binds everyone", rec(func(e *record.OpError) { e.AccountIdentity = "" }), "other", fp, true},
		{"unknown fingerprint still binds", rec(nil), "fb", "", true},
		{"legacy 24 h network latch heals after 5 min", rec(func(e *record.OpError) {
			e.Status, e.Message = 0, "fetch failed"
			e.CheckedAt = msOf(policyNow.Add(-6 * time.Minute))
			e.NextRetryAt = msOf(policyNow.Add(20 * time.Hour))
		}), "fb", fp, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, RefreshBackoffActive(tc.err, tc.identity, policyNow, tc.fp))
		})
	}
}

func TestQuotaBackoffActive(t *testing.T) {
	assert.False(t, QuotaBackoffActive(nil, policyNow))
	assert.True(t, QuotaBackoffActive(&record.OpError{NextRetryAt: msOf(policyNow.Add(time.Second))}, policyNow))
	assert.False(t, QuotaBackoffActive(&record.OpError{NextRetryAt: msOf(policyNow)}, policyNow))
}

func TestKillswitchPasses(t *testing.T) {
	on := Defaults()
	on.Killswitch.Enabled = true
	perAccount := on
	perAccount.Killswitch.Accounts = map[string]Thresholds{"fb": {FiveHour: 50, SevenDay: 10}}
	open := on
	open.FailClosedOnUnknown = false
	tests := []struct {
		name  string
		q     *record.QuotaSnapshot
		s     Settings
		id    string
		model string
		want  bool
	}{
		{"off passes everything", snapQ(0, 0, policyNow), Defaults(), "main", "", true},
		{"default thresholds 5/10 pass", snapQ(5, 10, policyNow), on, "main", "", true},
		{"5h below default", snapQ(4, 50, policyNow), on, "main", "", false},
		{"7d below default", snapQ(50, 9, policyNow), on, "main", "", false},
		{"per-account threshold", snapQ(40, 50, policyNow), perAccount, "fb", "", false},
		{"other accounts use main thresholds", snapQ(40, 50, policyNow), perAccount, "fb2", "", true},
		{"present low window blocks with the other missing", &record.QuotaSnapshot{FiveHour: win(1, policyNow, 0)}, open, "main", "", false},
		{"unknown fails closed", nil, on, "main", "", false},
		{"unknown passes open", nil, open, "main", "", true},
		{"scoped threshold is inclusive", snapQ(50, 50, policyNow, scoped("Fable", 0, policyNow, 0)), on, "main", "claude-fable-5", false},
		{"scoped window of another model ignored", snapQ(50, 50, policyNow, scoped("Fable", 0, policyNow, 0)), on, "main", "claude-opus-4", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, killswitchPasses(tc.q, tc.s, tc.id, tc.model))
		})
	}
}

func TestKillswitchRetryAfter(t *testing.T) {
	a := snapQ(1, 50, policyNow) // 5h resets in 2 h, 7d in 72 h
	b := &record.QuotaSnapshot{FiveHour: win(0, policyNow, 90*time.Minute+500*time.Millisecond), SevenDay: win(50, policyNow, 0),
		Scoped: []record.ScopedWindow{scoped("Fable", 0, policyNow, 30*time.Hour)}}
	b.FiveHour.ResetsAt = policyNow.Add(90*time.Minute + 500*time.Millisecond).Format(time.RFC3339Nano)
	assert.Equal(t, 90*time.Minute+time.Second+60*time.Second, KillswitchRetryAfter([]*record.QuotaSnapshot{a, b}, "", policyNow), "earliest reset rounded up, plus 60 s")
	assert.Equal(t, 30*time.Hour+60*time.Second, KillswitchRetryAfter([]*record.QuotaSnapshot{a, b}, "claude-fable-5", policyNow), "scoped-driven")
	assert.Equal(t, 300*time.Second, KillswitchRetryAfter([]*record.QuotaSnapshot{nil, {FiveHour: win(0, policyNow, 0)}}, "", policyNow), "no reset known")
	past := &record.QuotaSnapshot{FiveHour: win(0, policyNow, -time.Minute)}
	assert.Equal(t, 300*time.Second, KillswitchRetryAfter([]*record.QuotaSnapshot{past}, "", policyNow), "past resets do not count")
	assert.Equal(t, "1m 5s", RetryInText(65*time.Second))
}
