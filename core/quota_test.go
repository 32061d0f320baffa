package core

import (
	"net/http"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	usageOK            = `{"five_hour":{"utilization":40,"resets_at":"2026-11-28T15:00:00Z"},"seven_day":{"utilization":75.5,"resets_at":null}}`
	usagePermissionErr = `{"type":"error","error":{"type":"permission_error","message":"OAuth authentication is currently not allowed for this organization."}}`
)

func TestEngine_fetchQuota_usageOutcomes(t *testing.T) {
	min := time.Minute
	cases := []struct {
		name        string
		usage       []scripted
		token       []scripted
		usageCalls  int
		tokenCalls  int
		quotaDelay  time.Duration // 0 = no lastQuotaRefreshError
		refreshRec  bool
		wantQuota   bool
		wantErrKind verdict.Class
	}{
		{name: "200 stores the snapshot", usage: []scripted{{status: 200, body: usageOK}}, usageCalls: 1, wantQuota: true},
		{name: "403 permission_error arms nothing and persists nothing", usage: []scripted{{status: 403, body: usagePermissionErr}}, usageCalls: 1, wantErrKind: verdict.ClassOrgPolicy},
		{name: "401 refreshes once and retries", usage: []scripted{{status: 401, body: "expired"}, {status: 200, body: usageOK}},
			token: []scripted{{status: 200, body: `{"access_token":"sk-ant-oat01-ROTATED","expires_in":28800}`}}, usageCalls: 2, tokenCalls: 1, wantQuota: true},
		{name: "401 after the forced refresh records a 5 min quota error only", usage: []scripted{{status: 401, body: "expired"}},
			token: []scripted{{status: 200, body: `{"access_token":"sk-ant-oat01-ROTATED","expires_in":28800}`}}, usageCalls: 2, tokenCalls: 1, quotaDelay: 5 * min, wantErrKind: verdict.ClassAuthExpired},
		{name: "401 then invalid_grant records both", usage: []scripted{{status: 401, body: "expired"}},
			token: []scripted{{status: 400, body: `{"error":"invalid_grant"}`}}, usageCalls: 1, tokenCalls: 1, quotaDelay: 5 * min, refreshRec: true, wantErrKind: verdict.ClassInvalidGrant},
		{name: "429 arms 60 s", usage: []scripted{{status: 429, body: "limited", header: map[string]string{"Retry-After": "3600"}}}, usageCalls: 1, quotaDelay: min, wantErrKind: verdict.ClassRateLimited},
		{name: "500 arms 60 s", usage: []scripted{{status: 500, body: "oops"}}, usageCalls: 1, quotaDelay: min, wantErrKind: verdict.ClassTransient},
		{name: "400 arms 5 min", usage: []scripted{{status: 400, body: "bad"}}, usageCalls: 1, quotaDelay: 5 * min, wantErrKind: verdict.ClassClientError},
		{name: "network arms 60 s", usage: []scripted{{close: true}}, usageCalls: 1, quotaDelay: min, wantErrKind: verdict.ClassTransient},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, st := oneFallback(testStart.Add(6 * time.Hour))
			env := newTestEnv(t, cfg, st)
			env.fake.script("usage", tc.usage...)
			env.fake.script("token", tc.token...)
			q, err := env.engine.fetchQuota(env.ctx(), "fb")
			assert.Equal(t, tc.usageCalls, env.fake.count("usage"))
			assert.Equal(t, tc.tokenCalls, env.fake.count("token"))
			s := env.accountState("fb")
			if tc.wantQuota {
				require.NoError(t, err)
				require.NotNil(t, q.FiveHour)
				assert.Equal(t, 60.0, q.FiveHour.RemainingPercent)
				assert.Equal(t, 24.5, q.SevenDay.RemainingPercent)
				assert.NotNil(t, s["quota"])
			} else {
				require.Error(t, err)
				var ue *UpstreamError
				require.ErrorAs(t, err, &ue)
				assert.Equal(t, tc.wantErrKind, ue.Verdict.Class)
			}
			if tc.quotaDelay > 0 {
				rec, _ := s["lastQuotaRefreshError"].(map[string]any)
				require.NotNil(t, rec)
				assert.EqualValues(t, ms(env.clock.Now().Add(tc.quotaDelay)), rec["nextRetryAt"])
			} else {
				assert.Nil(t, s["lastQuotaRefreshError"])
			}
			assert.Equal(t, tc.refreshRec, s["lastRefreshError"] != nil)
			auth := env.fake.last("usage").header
			assert.Equal(t, "oauth-2025-04-20", auth.Get("anthropic-beta"))
		})
	}
}

// TestEngine_fetchQuota_token403InQuotaPass is the PR #86 case: a 403 from
// the token endpoint inside a quota pass must arm refresh backoff.
func TestEngine_fetchQuota_token403InQuotaPass(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(-time.Minute))
	env := newTestEnv(t, cfg, st)
	env.fake.script("token", scripted{status: 403, body: "Forbidden"})
	_, err := env.engine.fetchQuota(env.ctx(), "fb")
	require.Error(t, err)
	assert.Equal(t, 1, env.fake.count("token"))
	assert.Equal(t, 0, env.fake.count("usage"))
	s := env.accountState("fb")
	rec, _ := s["lastRefreshError"].(map[string]any)
	require.NotNil(t, rec, "token-endpoint 403 must persist lastRefreshError")
	assert.EqualValues(t, 403, rec["status"])
	assert.Equal(t, false, rec["permanent"])
	assert.EqualValues(t, ms(testStart.Add(24*time.Hour)), rec["nextRetryAt"])
	assert.NotNil(t, s["lastQuotaRefreshError"])

	// Within 24 h no further token call, whatever the passes do.
	for _, step := range []time.Duration{time.Minute, 10 * time.Minute, 6 * time.Hour} {
		env.clock.Advance(step)
		_, err := env.engine.fetchQuota(env.ctx(), "fb")
		require.Error(t, err)
	}
	assert.Equal(t, 1, env.fake.count("token"))
}

func TestEngine_fetchQuota_transientScheduleAndReset(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(6 * time.Hour))
	env := newTestEnv(t, cfg, st)
	env.fake.script("usage", scripted{status: 429, body: "limited"}, scripted{status: 429, body: "limited"},
		scripted{status: 200, body: usageOK}, scripted{status: 500, body: "x"})
	next := func() int64 {
		return int64(env.accountState("fb")["lastQuotaRefreshError"].(map[string]any)["nextRetryAt"].(float64))
	}
	_, err := env.engine.fetchQuota(env.ctx(), "fb")
	require.Error(t, err)
	assert.EqualValues(t, ms(env.clock.Now().Add(time.Minute)), next())

	// Backed off: no call, a backoff error with the upstream wording.
	_, err = env.engine.fetchQuota(env.ctx(), "fb")
	assert.ErrorIs(t, err, ErrQuotaBackoff)
	assert.Contains(t, err.Error(), "Quota API backed off for 60s after: Claude quota check failed: 429")
	assert.Equal(t, 1, env.fake.count("usage"))

	env.clock.Advance(61 * time.Second)
	_, err = env.engine.fetchQuota(env.ctx(), "fb")
	require.Error(t, err)
	assert.EqualValues(t, ms(env.clock.Now().Add(2*time.Minute)), next(), "second failure doubles")

	env.clock.Advance(3 * time.Minute)
	_, err = env.engine.fetchQuota(env.ctx(), "fb")
	require.NoError(t, err)
	assert.Nil(t, env.accountState("fb")["lastQuotaRefreshError"], "success clears the error")

	env.clock.Advance(10 * time.Minute)
	_, err = env.engine.fetchQuota(env.ctx(), "fb")
	require.Error(t, err)
	assert.EqualValues(t, ms(env.clock.Now().Add(time.Minute)), next(), "the series restarts after a success")
}

func TestEngine_usageGap(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(6 * time.Hour))
	env := newTestEnv(t, cfg, st)
	env.fake.script("usage", scripted{status: 200, body: usageOK})
	_, err := env.engine.fetchQuota(env.ctx(), "fb")
	require.NoError(t, err)
	before := env.clock.Now()
	_, err = env.engine.fetchQuota(env.ctx(), "fb")
	require.NoError(t, err)
	assert.Equal(t, time.Second, env.clock.Now().Sub(before), "the second call waited out the 1 s gap on the clock")
}

func TestMergeQuota_headersNeverOverwritePollFields(t *testing.T) {
	poll, err := anthropic.ParseUsage([]byte(`{"five_hour":{"utilization":10},"seven_day":{"utilization":20},
		"limits":[{"kind":"weekly_all","group":"weekly","percent":20,"is_active":true},
		{"kind":"weekly_scoped","group":"weekly","percent":30,"scope":{"model":{"display_name":"Fable"}}}]}`), testStart)
	require.NoError(t, err)
	h := http.Header{}
	h.Set("anthropic-ratelimit-unified-5h-utilization", "0.42")
	h.Set("anthropic-ratelimit-unified-5h-reset", "1796000000")
	h.Set("anthropic-ratelimit-unified-fallback", "available")
	h.Set("anthropic-ratelimit-unified-representative-claim", "five_hour")
	hq := anthropic.QuotaFromHeaders(h, testStart.Add(time.Minute))
	require.NotNil(t, hq)
	merged := mergeQuota(poll, hq)
	assert.Equal(t, 58.0, merged.FiveHour.RemainingPercent, "newer header window wins")
	assert.Equal(t, 80.0, merged.SevenDay.RemainingPercent, "poll window kept")
	assert.Len(t, merged.Scoped, 1, "scoped is poll-owned")
	assert.Equal(t, "seven_day", merged.BindingWindow, "a polled binding window is not replaced by headers")
	require.NotNil(t, merged.FallbackAdvised)
	assert.True(t, *merged.FallbackAdvised)
	assert.Equal(t, record.QuotaSourceHeaders, merged.FieldSources["five_hour"])
	assert.Equal(t, record.QuotaSourcePoll, merged.FieldSources["seven_day"])

	// A poll that completes later keeps newer header windows only.
	older := *poll
	older.FiveHour = &record.QuotaWindow{UsedPercent: 1, RemainingPercent: 99, CheckedAt: ms(testStart)}
	back := mergeQuota(merged, &older)
	assert.Equal(t, 58.0, back.FiveHour.RemainingPercent)

	assert.Nil(t, anthropic.QuotaFromHeaders(http.Header{"X": {"1"}}, testStart), "no quota headers, no snapshot")
}
