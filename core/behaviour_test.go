package core

import (
	"strconv"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Behaviour fixes of issue 13, each through the public Engine.

func mainEnv(t *testing.T, config, state string) *testEnv {
	t.Helper()
	env := newTestEnv(t, config, state)
	env.engine.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(8 * time.Hour))})
	return env
}

// One failed main usage poll used to make every main request a synthetic
// 429 for 60 s doubling to 15 min. On default settings main is never
// polled in the background and never refused for unknown quota.
func TestMainUnknownQuotaServesOnDefaults(t *testing.T) {
	backedOff := `{"version":1,"main":{"lastQuotaApiError":{"message":"Claude quota check failed: 429","checkedAt":` +
		itoa(epochMs(testStart)) + `,"nextRetryAt":` + itoa(epochMs(testStart.Add(time.Minute))) + `,"retryCount":1}},"accounts":{}}`
	t.Run("defaults: no background poll, main serves", func(t *testing.T) {
		env := mainEnv(t, `{"version":1,"accounts":[]}`, backedOff)
		sum, err := env.engine.RefreshQuotaDue(env.ctx())
		require.NoError(t, err)
		assert.Equal(t, 0, env.fake.count("usage"), "main is not polled unless quota.enabled is true")
		require.NotEmpty(t, sum.Results)
		assert.Equal(t, OutcomeSkipped, sum.Results[0].Outcome)
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		assert.Equal(t, MainAccountID, r.AccountID)
		v, err := env.engine.GetAccount(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.True(t, v.Usable, v.Reason)
	})
	t.Run("quota.enabled true without failClosed: main serves", func(t *testing.T) {
		env := mainEnv(t, `{"version":1,"accounts":[],"quota":{"enabled":true}}`, backedOff)
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		assert.Equal(t, MainAccountID, r.AccountID)
		assert.Equal(t, 0, env.fake.count("usage"), "the backoff stops the poll")
	})
	t.Run("failClosedOnUnknownQuota true: the synthetic 429", func(t *testing.T) {
		env := mainEnv(t, `{"version":1,"accounts":[],"quota":{"enabled":true,"failClosedOnUnknownQuota":true}}`, backedOff)
		_, err := env.engine.Select(env.ctx(), SelectRequest{})
		nr := noRoute(t, err)
		assert.Equal(t, 429, nr.Status)
		assert.Equal(t, int64(60_000), nr.RetryAfterMs)
	})
}

// Legacy re-login rule and one answer about 24 h after an invalid_grant.
func TestReloginOneAnswer(t *testing.T) {
	cfg := `{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth"}],"quota":{"failClosedOnUnknownQuota":false}}`
	stateWith := func(rec string) string {
		return `{"version":1,"accounts":{"fb":{"access":"a","refresh":"r","expires":` + itoa(epochMs(testStart.Add(time.Hour))) +
			`,"lastRefreshError":` + rec + `}}}`
	}
	fp := secret.Secret("r").Fingerprint()
	tests := []struct {
		name    string
		rec     string
		relogin bool
	}{
		{"invalid_grant a day and a minute ago still needs re-login",
			`{"message":"invalid_grant","status":400,"permanent":true,"checkedAt":` + itoa(epochMs(testStart.Add(-24*time.Hour-time.Minute))) +
				`,"nextRetryAt":` + itoa(epochMs(testStart.Add(-time.Minute))) + `,"accountIdentity":"fb","refreshTokenFingerprint":"` + fp + `"}`, true},
		{"legacy record: no status, 24 h backoff",
			`{"message":"Refresh failed","checkedAt":` + itoa(epochMs(testStart.Add(-time.Hour))) + `,"nextRetryAt":` + itoa(epochMs(testStart.Add(23*time.Hour))) + `}`, true},
		{"legacy record: network failure",
			`{"message":"fetch failed","checkedAt":` + itoa(epochMs(testStart.Add(-time.Hour))) + `,"nextRetryAt":` + itoa(epochMs(testStart.Add(23*time.Hour))) + `}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := mainEnv(t, cfg, stateWith(tc.rec))
			v, err := env.engine.GetAccount(env.ctx(), "fb")
			require.NoError(t, err)
			assert.Equal(t, tc.relogin, v.NeedsRelogin)
			assert.Equal(t, !tc.relogin, v.Usable, v.Reason)
			if tc.relogin {
				assert.Equal(t, policy.ReasonNeedsRelogin.String(), v.Reason)
			}
		})
	}
}

// A messages 429 whose headers say the 5-hour window is spent takes the
// account out until the reset; when every account is out, route/select
// answers NoRoute at once with the earliest reset as Retry-After, and no
// upstream call is made.
func TestSpentWindowTakesAccountOut(t *testing.T) {
	reset := testStart.Add(90 * time.Minute)
	spent := map[string]string{
		"anthropic-ratelimit-unified-5h-status":      "rejected",
		"anthropic-ratelimit-unified-5h-utilization": "1.0",
		"anthropic-ratelimit-unified-5h-reset":       strconv.FormatInt(reset.Unix(), 10),
		"anthropic-ratelimit-unified-7d-utilization": "0.4",
		"anthropic-ratelimit-unified-7d-reset":       strconv.FormatInt(testStart.Add(72*time.Hour).Unix(), 10),
	}
	env := routeEnv(t, "", nil, fb{id: "fb", quota: fq(80, 80)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	require.Equal(t, MainAccountID, r.AccountID)
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 429, Headers: spent, Replayable: true, Body: "rate limited"})
	require.NoError(t, err)
	require.Equal(t, ActionRetry, res.Action, res.Reason)
	require.Equal(t, "fb", res.Next.AccountID)
	res, err = env.engine.Report(env.ctx(), ReportRequest{Route: *res.Next, Status: 429, Headers: spent, Replayable: true, Body: "rate limited"})
	require.NoError(t, err)
	assert.Equal(t, ActionReturn, res.Action, res.Reason)

	usage := env.fake.count("usage")
	_, err = env.engine.Select(env.ctx(), SelectRequest{})
	nr := noRoute(t, err)
	assert.Equal(t, 429, nr.Status)
	assert.Equal(t, (90 * time.Minute).Milliseconds(), nr.RetryAfterMs, "the earliest reset")
	assert.Equal(t, epochMs(reset), reasonFor(nr, MainAccountID).Until)
	assert.Equal(t, epochMs(reset), reasonFor(nr, "fb").Until)
	assert.Equal(t, usage, env.fake.count("usage"), "no usage call")
	assert.Equal(t, 0, env.fake.count("token"), "no token call")

	v, err := env.engine.GetAccount(env.ctx(), "fb")
	require.NoError(t, err)
	assert.False(t, v.Usable)
	assert.Equal(t, epochMs(reset), v.Until)

	// After the reset the accounts come back.
	env.clock.Set(reset.Add(time.Second))
	r, err = env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, MainAccountID, r.AccountID)

	// A served response clears the record.
	env.clock.Set(testStart)
	_, err = env.engine.Report(env.ctx(), ReportRequest{Route: Route{AccountID: "fb"}, Status: 200,
		Headers: map[string]string{"anthropic-ratelimit-unified-5h-utilization": "0.2"}, Replayable: true})
	require.NoError(t, err)
	v, err = env.engine.GetAccount(env.ctx(), "fb")
	require.NoError(t, err)
	assert.True(t, v.Usable, v.Reason)
}

// A 429 without spent windows (a transient limit) does not take the
// account out.
func TestUnspentRateLimitKeepsAccount(t *testing.T) {
	env := routeEnv(t, "", nil)
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	_, err = env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 429, Replayable: true,
		Headers: map[string]string{"anthropic-ratelimit-unified-5h-utilization": "0.5", "anthropic-ratelimit-unified-5h-reset": strconv.FormatInt(testStart.Add(time.Hour).Unix(), 10)}})
	require.NoError(t, err)
	r, err = env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, MainAccountID, r.AccountID)
}

// One wrong-typed value never takes the engine down: it falls back to its
// default, the rest of the file is used, and a warning names the file,
// the key path, the value's type and the default used.
func TestWrongTypedValuesFallBack(t *testing.T) {
	cfg := `{"version":1,"mainAccountId":42,"accounts":[
		{"id":"a","label":"a","type":"oauth","enabled":"false","addedAt":"1"},
		{"id":"b","label":"b","type":"oauth"}],
		"fallbackOn":"429","routing":"x",
		"quota":{"enabled":"false","minimumRemaining":{"5h":"10","seven_day":20},"failClosedOnUnknownQuota":false},
		"killswitch":{"enabled":true,"main":{"five_hour":null,"seven_day":"12"}}}`
	st := `{"version":1,"accounts":{
		"a":{"access":"a-access","refresh":"a-refresh","expires":` + itoa(epochMs(testStart.Add(8*time.Hour))) + `,"quota":` + mustJSON(t, fq(80, 80)) + `},
		"b":{"access":"b-access","refresh":"b-refresh","expires":"soon"}}}`
	env := mainEnv(t, cfg, st)
	ws, err := env.engine.Warnings(env.ctx())
	require.NoError(t, err)
	got := map[string]Warning{}
	for _, w := range ws {
		got[w.Path] = w
		assert.NotContains(t, w.String(), "b-refresh")
	}
	for path, want := range map[string]struct{ file, typ string }{
		"mainAccountId":             {env.paths.Config, "a number"},
		"accounts[0].enabled":       {env.paths.Config, "a string"},
		"accounts[0].addedAt":       {env.paths.Config, "a string"},
		"fallbackOn":                {env.paths.Config, "a string"},
		"routing":                   {env.paths.Config, "a string"},
		"quota.enabled":             {env.paths.Config, "a string"},
		"quota.minimumRemaining.5h": {env.paths.Config, "a string"},
		"killswitch.main.seven_day": {env.paths.Config, "a string"},
		"accounts.b.expires":        {env.paths.State, "a string"},
	} {
		w, ok := got[path]
		if assert.True(t, ok, "warning for %s in %v", path, ws) {
			assert.Equal(t, want.file, w.File, path)
			assert.Equal(t, want.typ, w.Type, path)
			assert.NotEmpty(t, w.Default, path)
		}
	}
	_, nullWarned := got["killswitch.main.five_hour"]
	assert.False(t, nullWarned, "null is the default, not a wrong type")

	snap, err := env.engine.store.Load(env.ctx())
	require.NoError(t, err)
	s := snap.Settings
	assert.Equal(t, policy.RoutingMainFirst, s.Routing)
	assert.Equal(t, policy.DefaultFallbackOn, s.FallbackOn)
	assert.True(t, s.QuotaEnabled)
	assert.Equal(t, policy.Thresholds{FiveHour: 0, SevenDay: 20}, s.MinimumRemaining, "the rest of the section is used")
	assert.Equal(t, policy.Thresholds{FiveHour: 5, SevenDay: 10, Scoped: 0}, s.Killswitch.Main, "null and wrong types mean the defaults, never 0")
	assert.True(t, s.Killswitch.Enabled)

	views, err := env.engine.ListAccounts(env.ctx())
	require.NoError(t, err)
	require.Len(t, views, 3)
	assert.True(t, views[1].Enabled, `"enabled": "false" is not false`)
	assert.True(t, views[1].Usable, views[1].Reason)
}

// A null killswitch threshold means the default; mainAccountId is trimmed.
func TestKillswitchNullAndTrimmedMainID(t *testing.T) {
	cfg := `{"version":1,"mainAccountId":"  uuid-1 \n","accounts":[],"killswitch":{"enabled":true,"main":{"five_hour":null,"seven_day":null,"scoped":null},"accounts":{"main":{"5h":null}}}}`
	env := mainEnv(t, cfg, `{"version":1,"accounts":{}}`)
	snap, err := env.engine.store.Load(env.ctx())
	require.NoError(t, err)
	assert.Equal(t, policy.DefaultKillswitch, snap.Settings.Killswitch.Main)
	assert.Equal(t, policy.DefaultKillswitch, snap.Settings.Killswitch.For(MainAccountID))
	assert.Equal(t, "uuid-1", mainIdentity(snap))
	ws, err := env.engine.Warnings(env.ctx())
	require.NoError(t, err)
	assert.Empty(t, ws)
}

// Only JSON that does not parse is a corrupt file, and the error says where.
func TestCorruptConfigNamesLineAndColumn(t *testing.T) {
	env := newTestEnv(t, "{\"version\":1,\n\"accounts\":[}\n", "")
	_, err := env.engine.ListAccounts(env.ctx())
	require.ErrorIs(t, err, ErrCorruptFile)
	assert.Contains(t, err.Error(), "line 2, column")
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// Unknown keys survive inside quota snapshots and error records when
// acctpool rewrites the state file, and views show only the schema's keys.
func TestNestedUnknownKeysSurvive(t *testing.T) {
	cfg := `{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth"}]}`
	st := `{"version":1,"accounts":{"fb":{"access":"a","refresh":"r","expires":` + itoa(epochMs(testStart.Add(8*time.Hour))) + `,
		"quota":{"five_hour":{"usedPercent":10,"remainingPercent":90,"checkedAt":1},"seven_day":{"usedPercent":5,"remainingPercent":95,"checkedAt":1,"futureWindowKey":[2]},"futureQuotaKey":{"x":1}},
		"lastQuotaRefreshError":{"message":"m","checkedAt":1,"futureErrorKey":"y"}}}}`
	env := mainEnv(t, cfg, st)
	label := "renamed"
	v, err := env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "fb", Label: &label})
	require.NoError(t, err)
	assert.Nil(t, v.Quota.Extra, "views carry the schema's keys only")
	require.NotNil(t, v.Quota.SevenDay)
	assert.Nil(t, v.Quota.SevenDay.Extra, "at every level")
	assert.Nil(t, v.LastQuotaError.Extra)
	_, err = env.engine.ObserveHeaders(env.ctx(), "fb", map[string][]string{"Anthropic-Ratelimit-Unified-5h-Utilization": {"0.3"}})
	require.NoError(t, err)
	a := env.accountState("fb")
	q, _ := a["quota"].(map[string]any)
	assert.Equal(t, map[string]any{"x": 1.0}, q["futureQuotaKey"])
	w, _ := q["seven_day"].(map[string]any)
	assert.Equal(t, []any{2.0}, w["futureWindowKey"], "unknown keys inside a window survive")
	e, _ := a["lastQuotaRefreshError"].(map[string]any)
	assert.Equal(t, "y", e["futureErrorKey"])
}

// An account of a type acctpool does not know is listed, never routed.
func TestUnknownAccountTypeListed(t *testing.T) {
	cfg := `{"version":1,"accounts":[{"id":"v","label":"v","type":"vault"}]}`
	env := mainEnv(t, cfg, `{"version":1,"accounts":{"v":{"refresh":"r"}}}`)
	views, err := env.engine.ListAccounts(env.ctx())
	require.NoError(t, err)
	require.Len(t, views, 2)
	assert.Equal(t, record.AccountUnknown, views[1].Type)
	assert.False(t, views[1].Usable)
	assert.Contains(t, views[1].Problem, "vault")
	r, err := env.engine.Select(env.ctx(), SelectRequest{Exclude: []string{MainAccountID}})
	assert.Nil(t, r)
	assert.Equal(t, "unknown account type vault", reasonFor(noRoute(t, err), "v").Reason)
}

// The quota pass refreshes a token that is due even when the account's
// quota is fresh, as upstream does.
func TestQuotaPassRefreshesDueTokenWithFreshQuota(t *testing.T) {
	env := routeEnv(t, "", nil, fb{id: "fb", quota: fq(80, 80), expires: time.Hour})
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"fb-access-2","refresh_token":"fb-refresh-2","expires_in":28800}`})
	sum, err := env.engine.RefreshQuotaDue(env.ctx())
	require.NoError(t, err)
	assert.Equal(t, 1, env.fake.count("token"))
	assert.Equal(t, 0, env.fake.count("usage"), "the fresh quota is not polled")
	var fbResult PassResult
	for _, r := range sum.Results {
		if r.Account == "fb" {
			fbResult = r
		}
	}
	assert.Equal(t, OutcomeRefreshed, fbResult.Outcome)
	assert.Equal(t, "fb-refresh-2", env.accountState("fb")["refresh"])
}

// The quota pass decides for main as for every OAuth account (one path):
// a due token is refreshed even when the quota is fresh, an account that
// needs a re-login is left alone, and an expired quota error older than a
// fresh snapshot is cleared. Main is never claimed across machines.
func TestQuotaPassTreatsMainAsAnAccount(t *testing.T) {
	yes := true
	relogin := &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, CheckedAt: epochMs(testStart.Add(-25 * time.Hour)),
		NextRetryAt: epochMs(testStart.Add(-time.Hour)), AccountIdentity: "main-uuid", RefreshTokenFingerprint: secret.Secret("main-refresh").Fingerprint()}
	expiredQuotaErr := &record.OpError{Message: "Claude quota check failed: 429", Status: 429, CheckedAt: epochMs(testStart.Add(-10 * time.Minute)),
		NextRetryAt: epochMs(testStart.Add(-5 * time.Minute)), AccountIdentity: "main-uuid"}
	fresh := func() *record.QuotaSnapshot { q := fq(80, 80); q.AccountIdentity = "main-uuid"; return q }
	cases := []struct {
		name     string
		main     *record.MainState
		expires  time.Duration
		outcome  string
		reason   string
		token    int
		usage    int
		quotaErr bool // main's lastQuotaApiError still there after the pass
	}{
		{"a due token is refreshed though the quota is fresh", &record.MainState{Quota: fresh()}, time.Hour, OutcomeRefreshed, "quota fresh; token due", 1, 0, false},
		{"a fresh quota and a fresh token: nothing to do", &record.MainState{Quota: fresh()}, 8 * time.Hour, OutcomeSkipped, "quota fresh", 0, 0, false},
		{"needing a re-login, main is not polled", &record.MainState{LastRefreshError: relogin}, 8 * time.Hour, OutcomeSkipped, "needs re-login", 0, 0, false},
		{"an expired quota error older than the fresh snapshot is cleared", &record.MainState{Quota: fresh(), LastQuotaAPIError: expiredQuotaErr}, 8 * time.Hour, OutcomeSkipped, "quota fresh", 0, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := routeEnv(t, `"quota":{"enabled":true}`, tc.main)
			env.engine.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(tc.expires))})
			env.fake.script("token", scripted{status: 200, body: `{"access_token":"main-access-2","refresh_token":"main-refresh-2","expires_in":28800}`})
			env.fake.script("usage", scripted{status: 200, body: usageOK})
			sum, err := env.engine.RefreshQuotaDue(env.ctx())
			require.NoError(t, err)
			var got PassResult
			for _, r := range sum.Results {
				if r.Account == MainAccountID {
					got = r
				}
			}
			assert.Equal(t, tc.outcome, got.Outcome)
			assert.Equal(t, tc.reason, got.Reason)
			assert.Equal(t, tc.token, env.fake.count("token"))
			assert.Equal(t, tc.usage, env.fake.count("usage"))
			m, _ := env.state()["main"].(map[string]any)
			assert.Equal(t, tc.quotaErr, m["lastQuotaApiError"] != nil)
		})
	}
}

// A refresh token rejected for good is not posted again by the background
// passes once its 24-hour backoff ends: the account needs a re-login, and
// the passes give the same answer as the views.
func TestPassesLeaveReloginAccountsAlone(t *testing.T) {
	yes := true
	rec := &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, CheckedAt: epochMs(testStart.Add(-25 * time.Hour)),
		NextRetryAt: epochMs(testStart.Add(-time.Hour)), AccountIdentity: "fb", RefreshTokenFingerprint: secret.Secret("refresh-fb").Fingerprint()}
	env := routeEnv(t, `"quota":{"failClosedOnUnknownQuota":false}`, nil, fb{id: "fb", expires: time.Minute, refErr: rec})
	sum, err := env.engine.RefreshDue(env.ctx())
	require.NoError(t, err)
	qsum, err := env.engine.RefreshQuotaDue(env.ctx())
	require.NoError(t, err)
	assert.Equal(t, 0, env.fake.count("token"))
	assert.Equal(t, 0, env.fake.count("usage"))
	for _, s := range []PassSummary{sum, qsum} {
		for _, r := range s.Results {
			if r.Account == "fb" {
				assert.Equal(t, OutcomeSkipped, r.Outcome)
				assert.Equal(t, "needs re-login", r.Reason)
			}
		}
	}
	v, err := env.engine.GetAccount(env.ctx(), "fb")
	require.NoError(t, err)
	assert.True(t, v.NeedsRelogin)
	assert.False(t, v.Usable)
}

// A network failure while refreshing main used to persist a 5 min
// lastRefreshError and refuse main without another token attempt. Upstream
// latches only answers of the token endpoint on the main path
// (BEHAVIOUR.md §2.5): the next request tries again, with the retries.
func TestMainNetworkRefreshFailureNotLatched(t *testing.T) {
	env := newTestEnv(t, `{"version":1,"mainAccountId":"m-1","accounts":[]}`, `{"version":1,"accounts":{}}`)
	_, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(-time.Minute))})
	require.NoError(t, err)
	dropped := scripted{close: true}
	env.fake.script("token", dropped, dropped, dropped, dropped, dropped, dropped,
		scripted{status: 200, body: `{"access_token":"main-access-2","refresh_token":"main-refresh-2","expires_in":28800}`})

	_, err = env.engine.Select(env.ctx(), SelectRequest{})
	require.Error(t, err, "main cannot be refreshed and there is no fallback")
	assert.Equal(t, anthropic.TokenAttempts, env.fake.count("token"), "one request, the in-call retries")
	main, _ := env.state()["main"].(map[string]any)
	assert.NotContains(t, main, "lastRefreshError", "a network failure is not latched on main")
	v, err := env.engine.GetAccount(env.ctx(), MainAccountID)
	require.NoError(t, err)
	assert.False(t, v.NeedsRelogin)

	_, err = env.engine.Select(env.ctx(), SelectRequest{})
	require.Error(t, err)
	assert.Equal(t, 2*anthropic.TokenAttempts, env.fake.count("token"), "the next request tries the endpoint again")

	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	assert.Equal(t, MainAccountID, r.AccountID)
	assert.Equal(t, secret.Secret("main-access-2"), r.Credential.Token)
	assert.Equal(t, 2*anthropic.TokenAttempts+1, env.fake.count("token"))
}

func profileBody(uuid string) string {
	return `{"account":{"uuid":"` + uuid + `","email":"someone@example.com"},"organization":{"uuid":"org-1","rate_limit_tier":"default_claude_max_20x","organization_type":"claude_max"}}`
}

// Main's quota snapshot is bound to the Claude account UUID of its access
// token, from the profile (cached 7 days), as upstream binds it, so the
// two read each other's snapshot; a host that switches main accounts
// drops main's cached quota and quota backoff (BEHAVIOUR.md §3.7).
func TestMainQuotaIdentityIsTheAccountUUID(t *testing.T) {
	const cfg = `{"version":1,"mainAccountId":"m-1","accounts":[],"quota":{"enabled":true}}`
	oldAccess, newAccess := secret.Secret("sk-ant-oat01-MAINOLD"), secret.Secret("sk-ant-oat01-MAINNEW")
	setMain := func(t *testing.T, env *testEnv, access secret.Secret) {
		_, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: access, Refresh: "sk-ant-ort01-MAIN", Expires: epochMs(testStart.Add(8 * time.Hour))})
		require.NoError(t, err)
	}
	mainState := func(env *testEnv) map[string]any { m, _ := env.state()["main"].(map[string]any); return m }

	t.Run("first poll fetches the profile and binds the snapshot to the UUID", func(t *testing.T) {
		env := newTestEnv(t, cfg, `{"version":1,"accounts":{}}`)
		env.fake.script("profile", scripted{status: 200, body: profileBody("uuid-A")})
		env.fake.script("usage", scripted{status: 200, body: usageOK})
		setMain(t, env, oldAccess)
		v, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		require.NotNil(t, v.Quota)
		assert.Equal(t, "Bearer "+oldAccess.Reveal(), env.fake.last("profile").header.Get("Authorization"))
		m := mainState(env)
		assert.Equal(t, "uuid-A", m["quota"].(map[string]any)["accountIdentity"])
		p := m["profile"].(map[string]any)
		assert.Equal(t, "uuid-A", p["providerAccountUuid"])
		assert.Equal(t, "default_claude_max_20x", p["tier"])
		assert.Equal(t, "claude_max", p["orgType"])
		assert.Equal(t, oldAccess.Fingerprint(), p["tokenFingerprint"])
		assert.NotContains(t, env.fake.last("profile").header.Get("Authorization"), "[redacted]")

		env.clock.Advance(10 * time.Minute)
		_, err = env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, 1, env.fake.count("profile"), "the profile is cached")
		assert.Equal(t, 2, env.fake.count("usage"))
		env.clock.Advance(profileTTL)
		env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-MAINROTATED","refresh_token":"sk-ant-ort01-MAIN2","expires_in":28800}`})
		_, err = env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, 2, env.fake.count("profile"), "after 7 days the profile is fetched again")
	})

	t.Run("a rotation by acctpool keeps the profile: same account, no new profile call", func(t *testing.T) {
		env := newTestEnv(t, cfg, `{"version":1,"accounts":{}}`)
		env.fake.script("profile", scripted{status: 200, body: profileBody("uuid-A")})
		env.fake.script("usage", scripted{status: 200, body: usageOK})
		setMain(t, env, oldAccess)
		_, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		env.clock.Advance(9 * time.Hour) // main's token expired
		env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-MAINROTATED","refresh_token":"sk-ant-ort01-MAIN2","expires_in":28800}`})
		_, err = env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, 1, env.fake.count("token"))
		assert.Equal(t, 1, env.fake.count("profile"), "the profile moved to the rotated token")
		m := mainState(env)
		assert.Equal(t, secret.Secret("sk-ant-oat01-MAINROTATED").Fingerprint(), m["profile"].(map[string]any)["tokenFingerprint"])
		assert.Equal(t, "uuid-A", m["quota"].(map[string]any)["accountIdentity"])
	})

	// The state file as the upstream plugin leaves it: the profile of the
	// current token and a fresh snapshot bound to the account UUID.
	upstreamState := func(quotaErr string) string {
		at := itoa(ms(testStart.Add(-time.Minute)))
		return `{"version":1,"accounts":{},"main":{"profile":{"tier":"t","orgType":"o","checkedAt":` + at +
			`,"accountIdentity":"m-1","providerAccountUuid":"uuid-A","tokenFingerprint":"` + oldAccess.Fingerprint() + `"},` +
			`"quota":{"five_hour":{"usedPercent":30,"remainingPercent":70,"checkedAt":` + at + `},"seven_day":{"usedPercent":10,"remainingPercent":90,"checkedAt":` + at +
			`},"source":"poll","checkedAt":` + at + `,"accountIdentity":"uuid-A"}` + quotaErr + `}}`
	}
	backoff := `,"lastQuotaApiError":{"message":"Claude quota check failed: 429","checkedAt":` + itoa(ms(testStart.Add(-time.Minute))) +
		`,"nextRetryAt":` + itoa(ms(testStart.Add(time.Minute))) + `,"retryCount":1,"accountIdentity":"uuid-A"}`

	t.Run("the upstream plugin's snapshot is read, not polled again", func(t *testing.T) {
		env := newTestEnv(t, cfg, upstreamState(""))
		setMain(t, env, oldAccess)
		v, err := env.engine.GetAccount(env.ctx(), MainAccountID)
		require.NoError(t, err)
		require.NotNil(t, v.Quota, "main's snapshot bound to the account UUID is main's")
		assert.Equal(t, 70.0, v.Quota.FiveHour.RemainingPercent)
		_, err = env.engine.RefreshQuotaDue(env.ctx())
		require.NoError(t, err)
		assert.Equal(t, 0, env.fake.count("usage"), "fresh: no second poll")
		assert.Equal(t, 0, env.fake.count("profile"))
	})

	tests := []struct {
		name     string
		uuid     string
		switched bool
	}{
		{"a new token of the same account keeps main's quota backoff", "uuid-A", false},
		{"a token of another account drops main's quota and backoff", "uuid-B", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, cfg, upstreamState(backoff))
			env.fake.script("profile", scripted{status: 200, body: profileBody(tc.uuid)})
			env.fake.script("usage", scripted{status: 200, body: usageOK})
			setMain(t, env, newAccess)
			v, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
			require.NoError(t, err)
			assert.Equal(t, 1, env.fake.count("profile"))
			m := mainState(env)
			if tc.switched {
				assert.True(t, *v.Fetched)
				assert.Equal(t, 1, env.fake.count("usage"))
				assert.NotContains(t, m, "lastQuotaApiError")
				assert.Equal(t, "uuid-B", m["quota"].(map[string]any)["accountIdentity"])
				assert.Equal(t, 60.0, v.Quota.FiveHour.RemainingPercent)
			} else {
				assert.False(t, *v.Fetched, "still backed off: the cached snapshot")
				assert.Equal(t, 0, env.fake.count("usage"))
				assert.Contains(t, m, "lastQuotaApiError")
				assert.Equal(t, 70.0, v.Quota.FiveHour.RemainingPercent)
			}
			assert.Equal(t, tc.uuid, m["profile"].(map[string]any)["providerAccountUuid"])
		})
	}

	t.Run("accounts/setMain with another account's token drops main's quota at once, before any poll", func(t *testing.T) {
		env := newTestEnv(t, cfg, upstreamState(backoff))
		env.fake.script("profile", scripted{status: 200, body: profileBody("uuid-B")})
		v := func() AccountView {
			v, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: newAccess, Refresh: "sk-ant-ort01-MAIN", Expires: epochMs(testStart.Add(8 * time.Hour))})
			require.NoError(t, err)
			return v
		}()
		assert.Equal(t, 1, env.fake.count("profile"), "the new token's account is asked at setMain")
		assert.Equal(t, 0, env.fake.count("usage"), "no poll needed to notice the switch")
		assert.Nil(t, v.Quota, "the old account's snapshot is not main's any more")
		m := mainState(env)
		assert.NotContains(t, m, "quota")
		assert.NotContains(t, m, "lastQuotaApiError", "the old account's quota backoff is dropped")
		assert.Equal(t, "uuid-B", m["profile"].(map[string]any)["providerAccountUuid"])

		// The same token again asks nothing.
		_, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: newAccess, Refresh: "sk-ant-ort01-MAIN", Expires: epochMs(testStart.Add(8 * time.Hour))})
		require.NoError(t, err)
		assert.Equal(t, 1, env.fake.count("profile"))
	})

	t.Run("a failing profile endpoint is asked once per 10 minutes, not on every poll", func(t *testing.T) {
		env := newTestEnv(t, cfg, `{"version":1,"accounts":{}}`)
		// Two failures, then the endpoint recovers (the last entry repeats).
		env.fake.script("profile", scripted{status: 500, body: "down"}, scripted{status: 500, body: "down"},
			scripted{status: 200, body: profileBody("uuid-B")})
		env.fake.script("usage", scripted{status: 200, body: usageOK})
		setMain(t, env, oldAccess) // the first ask: a new token
		for range 3 {
			_, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
			require.NoError(t, err)
		}
		require.Equal(t, 3, env.fake.count("usage"), "every explicit refresh polls")
		assert.Equal(t, 1, env.fake.count("profile"), "the failure is remembered")

		env.clock.Advance(profileRetryAfter)
		_, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, 2, env.fake.count("profile"), "asked again after the backoff")

		// A new access token is asked at once, whatever the last failure.
		setMain(t, env, newAccess)
		_, err = env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, 3, env.fake.count("profile"))
		assert.Equal(t, "uuid-B", mainState(env)["quota"].(map[string]any)["accountIdentity"])
	})

	t.Run("no profile: the snapshot stays bound to mainAccountId", func(t *testing.T) {
		env := newTestEnv(t, cfg, `{"version":1,"accounts":{}}`)
		setMain(t, env, oldAccess)
		env.fake.script("profile", scripted{status: 500, body: "down"})
		env.fake.script("usage", scripted{status: 200, body: usageOK})
		_, err := env.engine.RefreshQuota(env.ctx(), MainAccountID)
		require.NoError(t, err)
		assert.Equal(t, "m-1", mainState(env)["quota"].(map[string]any)["accountIdentity"])
	})
}
