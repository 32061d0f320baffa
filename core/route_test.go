package core

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fb describes one fallback account of a routing test.
type fb struct {
	id       string
	api      bool
	disabled bool
	noAccess bool
	expires  time.Duration // from testStart; 0 means +8 h
	quota    *record.QuotaSnapshot
	refErr   *record.OpError
	qErr     *record.OpError
}

var freshAt = testStart.Add(-time.Minute)

// fq is a fresh quota snapshot with the given remaining percentages.
func fq(five, seven float64, sc ...record.ScopedWindow) *record.QuotaSnapshot {
	return snapQ(five, seven, freshAt, sc...)
}

func fableWin(remaining float64) record.ScopedWindow {
	return scoped("Fable", remaining, freshAt, 100*time.Hour)
}

// routeEnv builds an engine over a config with the given settings
// fragment ("" for none), main state and fallbacks, with main credentials
// valid for 8 hours unless mainExpires says otherwise.
func routeEnv(t *testing.T, settings string, main *record.MainState, fbs ...fb) *testEnv {
	t.Helper()
	cfg, state := routeFiles(t, settings, main, fbs...)
	env := newTestEnv(t, cfg, state)
	env.engine.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(8 * time.Hour))})
	return env
}

// routeFiles returns the config and state files of a routing test.
func routeFiles(tb testing.TB, settings string, main *record.MainState, fbs ...fb) (string, string) {
	var accts []string
	st := record.StateFile{Version: 1, Main: main, Accounts: map[string]*record.AccountState{}}
	for _, f := range fbs {
		typ := "oauth"
		extra := ""
		if f.api {
			typ = "api"
			extra = `,"baseURL":"https://api.example.test","authHeader":"x-api-key"`
		}
		if f.disabled {
			extra += `,"enabled":false`
		}
		accts = append(accts, fmt.Sprintf(`{"id":%q,"label":%q,"type":%q%s}`, f.id, f.id, typ, extra))
		s := &record.AccountState{Quota: f.quota, LastRefreshError: f.refErr, LastQuotaRefreshError: f.qErr}
		if f.api {
			s.APIKey = secret.Secret("key-" + f.id)
		} else {
			s.Refresh = secret.Secret("refresh-" + f.id)
			if !f.noAccess {
				s.Access = secret.Secret("access-" + f.id)
			}
			exp := f.expires
			if exp == 0 {
				exp = 8 * time.Hour
			}
			s.Expires = epochMs(testStart.Add(exp))
		}
		st.Accounts[f.id] = s
	}
	if settings != "" {
		settings += ","
	}
	cfg := `{"version":1,"mainAccountId":"main-uuid",` + settings + `"accounts":[` + strings.Join(accts, ",") + `]}`
	raw, err := json.Marshal(st)
	require.NoError(tb, err)
	return cfg, string(raw)
}

// usageJSON is a usage endpoint body with the given remaining percentages
// and the 5h reset at the given offset from now.
func usageJSON(now time.Time, five, seven float64, fiveReset time.Duration) string {
	return fmt.Sprintf(`{"five_hour":{"utilization":%g,"resets_at":%q},"seven_day":{"utilization":%g,"resets_at":%q}}`,
		100-five, now.Add(fiveReset).UTC().Format(time.RFC3339), 100-seven, now.Add(90*time.Hour).UTC().Format(time.RFC3339))
}

func noRoute(t *testing.T, err error) NoRoute {
	t.Helper()
	var nr *NoRouteError
	require.ErrorAs(t, err, &nr)
	require.ErrorIs(t, err, ErrNoRoute)
	return nr.NoRoute
}

func reasonFor(nr NoRoute, id string) AccountReason {
	for _, r := range nr.Accounts {
		if r.AccountID == id {
			return r
		}
	}
	return AccountReason{}
}

// Cases 40-42 and 44: a main token that cannot be refreshed on the request
// path.
func TestSelect_mainTokenRefreshFailures(t *testing.T) {
	tests := []struct {
		name       string
		token      []scripted
		fallbacks  []fb
		wantFirst  string // message fragment, or "route:<id>"
		wantSecond string
		calls      int
		permanent  bool
	}{
		{name: "40 token 429 fails, then backed off without a call", token: []scripted{{status: 429, body: `{"error":{"type":"rate_limit_error"}}`}},
			wantFirst: "Claude OAuth refresh failed: 429", wantSecond: "Claude OAuth refresh is backed off for", calls: 1},
		{name: "41 token 403 fails once, 24 h non-permanent backoff", token: []scripted{{status: 403, body: "Forbidden"}},
			wantFirst: "Claude OAuth refresh failed: 403", wantSecond: "Claude OAuth refresh is backed off for", calls: 1},
		{name: "42 token 500 then 200 succeeds on the second call", token: []scripted{{status: 500, body: "Temporary failure"}, {status: 200, body: `{"access_token":"main-new","refresh_token":"main-refresh-2","expires_in":28800}`}},
			wantFirst: "route:main", wantSecond: "route:main", calls: 2},
		{name: "42 token 500 three times fails after three calls", token: []scripted{{status: 500, body: "Temporary failure"}},
			wantFirst: "Claude OAuth refresh failed: 500", wantSecond: "Claude OAuth refresh is backed off for", calls: 3},
		{name: "44 main-first falls back when main cannot refresh (deliberate divergence)", token: []scripted{{status: 403, body: "Forbidden"}},
			fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, wantFirst: "route:fb", wantSecond: "route:fb", calls: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := routeEnv(t, `"quota":{"enabled":false}`, nil, tc.fallbacks...)
			env.engine.setMainCredentials(MainCredentials{Access: "main-expired", Refresh: "main-refresh", Expires: epochMs(testStart.Add(-time.Second))})
			env.fake.script("token", tc.token...)
			for i, want := range []string{tc.wantFirst, tc.wantSecond} {
				r, err := env.engine.Select(env.ctx(), SelectRequest{Model: "claude-sonnet-4-6"})
				if id, ok := strings.CutPrefix(want, "route:"); ok {
					require.NoError(t, err, "request %d", i+1)
					assert.Equal(t, id, r.AccountID)
					if id != MainAccountID {
						assert.Contains(t, r.Reason, "main", "the route says why main was passed over")
					}
					continue
				}
				nr := noRoute(t, err)
				assert.Contains(t, nr.Message, want, "request %d", i+1)
				assert.Contains(t, err.Error(), want)
				assert.NotEmpty(t, reasonFor(nr, MainAccountID).Reason)
			}
			assert.Equal(t, tc.calls, env.fake.count("token"))
			assert.Equal(t, 0, env.fake.count("usage"))
			if tc.calls < 3 && !strings.HasPrefix(tc.wantFirst, "route:main") {
				m, _ := env.state()["main"].(map[string]any)
				rec, _ := m["lastRefreshError"].(map[string]any)
				require.NotNil(t, rec, "main lastRefreshError persisted in the state file")
				assert.Greater(t, rec["nextRetryAt"], float64(ms(testStart)))
				assert.Equal(t, false, rec["permanent"])
			}
		})
	}
}

// Case 43: five concurrent selections with an expired main token make one
// token call and all succeed.
func TestSelect_mainRefreshDedup(t *testing.T) {
	env := routeEnv(t, "", nil)
	env.engine.setMainCredentials(MainCredentials{Access: "main-expired", Refresh: "main-refresh", Expires: epochMs(testStart.Add(-time.Second))})
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"main-new","refresh_token":"main-refresh-2","expires_in":28800}`})
	var wg sync.WaitGroup
	errs := make([]error, 5)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := env.engine.Select(env.ctx(), SelectRequest{})
			if err == nil && r.Credential.Token != "main-new" {
				err = errors.New("stale token")
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Equal(t, 1, env.fake.count("token"))
}

// Cases 37 and 45: a fallback (or main) under refresh backoff is passed
// over without any token or usage call.
func TestSelect_refreshBackoffExclusion(t *testing.T) {
	backoff := &record.OpError{Message: "Claude OAuth refresh failed: 429", Status: 429, CheckedAt: epochMs(testStart), NextRetryAt: epochMs(testStart.Add(10 * time.Minute))}
	t.Run("37 fallback with an expired token and active backoff is excluded", func(t *testing.T) {
		env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", expires: -time.Second, refErr: backoff, quota: fq(80, 80)})
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		assert.Equal(t, MainAccountID, r.AccountID)
		assert.Equal(t, 0, env.fake.count("token"))
		assert.Equal(t, 0, env.fake.count("usage"))
		env.fake.script("token") // nothing scripted: any call would be 599
		_, err = env.engine.Select(env.ctx(), SelectRequest{Exclude: []string{MainAccountID}})
		nr := noRoute(t, err)
		assert.Equal(t, AccountReason{AccountID: "fb", Reason: policy.ReasonRefreshBackoff.String(), Until: epochMs(testStart.Add(10 * time.Minute))}, reasonFor(nr, "fb"))
	})
	t.Run("45 fallback-first serves from a fallback while main is backed off", func(t *testing.T) {
		env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, &record.MainState{LastRefreshError: backoff}, fb{id: "fb", quota: fq(80, 80)})
		env.engine.setMainCredentials(MainCredentials{Access: "main-expired", Refresh: "main-refresh", Expires: epochMs(testStart.Add(-time.Second))})
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		assert.Equal(t, "fb", r.AccountID)
		assert.Equal(t, secret.Secret("access-fb"), r.Credential.Token)
		assert.Equal(t, "fallback-first", r.Reason)
		assert.Equal(t, 0, env.fake.count("token"))
	})
}

// Cases 47-53 and 56: a main-first (or killswitch) request whose first
// response failed.
func TestReport_mainFirstFallback(t *testing.T) {
	type step struct {
		status     int
		stream     bool
		replayable bool
		body       string
	}
	tests := []struct {
		name      string
		settings  string
		mainState *record.MainState
		fallbacks []fb
		usage     []scripted
		first     string // expected first route
		report    step
		action    string
		next      string
		nextKind  string
		usageN    int
		tokenN    int
		noRoute   string // fragment of the attached NoRoute message
	}{
		{name: "47 main 429 moves to a healthy OAuth fallback", fallbacks: []fb{{id: "fallback-1", quota: fq(80, 80)}},
			first: "main", report: step{status: 429, replayable: true, body: "limited"}, action: ActionRetry, next: "fallback-1", nextKind: "oauth"},
		{name: "48 main 429 with no usable fallback returns the 429", settings: `"quota":{"minimumRemaining":{"five_hour":10}}`,
			fallbacks: []fb{{id: "fallback-low", quota: fq(5, 80)}}, first: "main", report: step{status: 429, replayable: true, body: "limited"},
			action: ActionReturn, noRoute: "No account is currently routable"},
		{name: "49 main 429 confirmed exhausted opens the API-key route", fallbacks: []fb{{id: "api-1", api: true}},
			usage: []scripted{{status: 200, body: usageJSON(testStart, 0, 50, time.Hour)}}, first: "main",
			report: step{status: 429, replayable: true}, action: ActionRetry, next: "api-1", nextKind: "api", usageN: 1},
		{name: "49 main 429 not confirmed keeps API-key routes closed", fallbacks: []fb{{id: "api-1", api: true}},
			usage: []scripted{{status: 200, body: usageJSON(testStart, 75, 75, time.Hour)}}, first: "main",
			report: step{status: 429, replayable: true, body: "transient rate limit"}, action: ActionReturn, usageN: 1, noRoute: "routable"},
		{name: "50 main 403 never opens API-key routes", fallbacks: []fb{{id: "api-1", api: true}}, first: "main",
			report: step{status: 403, replayable: true, body: "auth failure"}, action: ActionReturn, noRoute: "routable"},
		{name: "51 main 403 moves to an OAuth fallback", fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "main",
			report: step{status: 403, replayable: true, body: `{"type":"error","error":{"type":"permission_error","message":"…"}}`}, action: ActionRetry, next: "fb", nextKind: "oauth"},
		{name: "52 stream rate_limit_error moves to a healthy fallback", fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "main",
			report: step{status: 200, stream: true, replayable: true}, action: ActionRetry, next: "fb", nextKind: "oauth"},
		{name: "52 stream rate_limit_error with no usable fallback returns the inspected response", settings: `"quota":{"minimumRemaining":{"five_hour":10}}`,
			fallbacks: []fb{{id: "fb", quota: fq(5, 80)}}, first: "main", report: step{status: 200, stream: true, replayable: true}, action: ActionReturn, noRoute: "routable"},
		{name: "53 a non-replayable request never moves", fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "main",
			report: step{status: 429, replayable: false, body: "limited"}, action: ActionReturn},
		{name: "500 is transient and stays", fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "main",
			report: step{status: 500, replayable: true}, action: ActionReturn},
		{name: "a status added to fallbackOn moves", settings: `"fallbackOn":[429,529]`, fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "main",
			report: step{status: 529, replayable: true}, action: ActionRetry, next: "fb", nextKind: "oauth"},
		{name: "56 killswitch surfaces the surviving fallback's 429", settings: `"killswitch":{"enabled":true}`,
			mainState: &record.MainState{Quota: fq(2, 80)}, fallbacks: []fb{{id: "fb", quota: fq(80, 80)}}, first: "fb",
			report: step{status: 429, replayable: true, body: `{"error":"fallback-limited"}`}, action: ActionReturn, noRoute: "Killswitch: no routable accounts. Retry in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := routeEnv(t, tc.settings, tc.mainState, tc.fallbacks...)
			env.fake.script("usage", tc.usage...)
			r, err := env.engine.Select(env.ctx(), SelectRequest{Model: "claude-sonnet-4-6", PromptBytes: 1000})
			require.NoError(t, err)
			require.Equal(t, tc.first, r.AccountID)
			res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: tc.report.status, StreamRateLimit: tc.report.stream,
				Replayable: tc.report.replayable, Body: tc.report.body})
			require.NoError(t, err)
			require.NotNil(t, res.Verdict)
			assert.Equal(t, tc.action, res.Action, res.Reason)
			assert.NotEmpty(t, res.Reason)
			if tc.next != "" {
				require.NotNil(t, res.Next)
				assert.Equal(t, tc.next, res.Next.AccountID)
				assert.Equal(t, tc.nextKind, res.Next.Kind.String())
				assert.Equal(t, []string{tc.first}, res.Next.Attempted)
				if tc.nextKind == "api" {
					assert.Equal(t, "x-api-key", res.Next.Credential.Type)
					assert.Equal(t, "https://api.example.test", res.Next.Credential.BaseURL)
				}
			} else {
				assert.Nil(t, res.Next)
			}
			if tc.noRoute != "" {
				require.NotNil(t, res.NoRoute)
				assert.Contains(t, res.NoRoute.Message, tc.noRoute)
				for _, f := range tc.fallbacks {
					assert.NotEmpty(t, reasonFor(*res.NoRoute, f.id).Reason, "every account explained")
				}
			}
			assert.Equal(t, tc.usageN, env.fake.count("usage"))
			assert.Equal(t, tc.tokenN, env.fake.count("token"))
			assert.Empty(t, env.accountState("fb")["lastRefreshError"], "messages failures arm no backoff")
		})
	}
}

// Case 51, 401 variant: a 401 on main refreshes main once and retries on
// main (the effects table's refresh-and-retry); a second 401 moves on.
func TestReport_401MovesFirst(t *testing.T) {
	body := `{"type":"error","error":{"type":"authentication_error","message":"OAuth authentication is currently not allowed for this organization."}}`
	t.Run("a fallback takes the request and main is not refreshed (case 51)", func(t *testing.T) {
		env := routeEnv(t, "", nil, fb{id: "fb", quota: fq(80, 80)})
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		require.Equal(t, MainAccountID, r.AccountID)
		res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 401, Body: body, Replayable: true})
		require.NoError(t, err)
		require.Equal(t, ActionRetry, res.Action)
		assert.Equal(t, "fb", res.Next.AccountID)
		assert.Equal(t, 0, env.fake.count("token"))
	})
	t.Run("with no other account the route's token is refreshed once, then returned", func(t *testing.T) {
		env := routeEnv(t, "", nil)
		env.fake.script("token", scripted{status: 200, body: `{"access_token":"main-new","refresh_token":"main-refresh-2","expires_in":28800}`})
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 401, Body: body, Replayable: true})
		require.NoError(t, err)
		require.Equal(t, ActionRetry, res.Action)
		assert.Equal(t, MainAccountID, res.Next.AccountID)
		assert.Equal(t, secret.Secret("main-new"), res.Next.Credential.Token)
		assert.True(t, res.Next.AuthRetried)
		res, err = env.engine.Report(env.ctx(), ReportRequest{Route: *res.Next, Status: 401, Body: body, Replayable: true})
		require.NoError(t, err)
		assert.Equal(t, ActionReturn, res.Action, "a second 401 is returned, not refreshed again")
		assert.NotNil(t, res.NoRoute)
		assert.Equal(t, 1, env.fake.count("token"))
	})
}

// Report harvests rate-limit headers and records lastUsed of a fallback.
func TestReport_successHarvestsAndTouches(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	require.Equal(t, "fb", r.AccountID)
	env.clock.Advance(time.Second)
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: map[string]string{
		"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1"}})
	require.NoError(t, err)
	assert.Equal(t, ActionReturn, res.Action)
	assert.Nil(t, res.Verdict)
	assert.Equal(t, 1, env.timers.fire(), "observations are written behind, by the flush")
	st := env.accountState("fb")
	assert.Equal(t, float64(ms(env.clock.Now())), st["lastUsed"])
	q, _ := st["quota"].(map[string]any)
	five, _ := q["five_hour"].(map[string]any)
	assert.Equal(t, float64(60), five["remainingPercent"])
}

// Case 46: sticky-balanced with a dead main and no fallback that can serve
// the model explains itself with upstream's synthetic responses.
func TestSelect_stickyNoRoute(t *testing.T) {
	yes := true
	dead := &record.OpError{Message: `Claude OAuth refresh failed: 400 — {"error":"invalid_grant"}`, Status: 400, Permanent: &yes,
		CheckedAt: epochMs(testStart), NextRetryAt: epochMs(testStart.Add(24 * time.Hour)), AccountIdentity: "main-uuid",
		RefreshTokenFingerprint: secret.Secret("main-refresh").Fingerprint()}
	tests := []struct {
		name      string
		main      *record.MainState
		fallbacks []fb
		status    int
		message   string
		retry     bool
	}{
		{"46 main needs re-login, fallbacks Fable-exhausted", &record.MainState{LastRefreshError: dead},
			[]fb{{id: "fallback-a", quota: fq(80, 80, fableWin(0))}, {id: "fallback-b", quota: fq(80, 80, fableWin(0))}}, 401,
			"Main Claude OAuth account requires re-login, and no fallback OAuth account is currently routable for Fable.", false},
		{"46 fallbacks need re-login", &record.MainState{Quota: fq(80, 80, fableWin(0))},
			[]fb{{id: "a", refErr: &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("refresh-a").Fingerprint()}},
				{id: "b", refErr: &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("refresh-b").Fingerprint()}}}, 401,
			"No OAuth account is currently routable for Fable. Fallback Claude OAuth accounts require re-login: a, b.", false},
		{"46 quota only, model-scoped", &record.MainState{Quota: fq(80, 80, fableWin(0))},
			[]fb{{id: "a", quota: fq(80, 80, fableWin(0))}}, 429, "Fable weekly limit reached, no routable OAuth accounts. Retry in", true},
		{"46 quota only", &record.MainState{Quota: fq(0, 0)},
			[]fb{{id: "a", quota: fq(80, 0)}}, 429, "No OAuth account currently satisfies sticky-balanced quota policy. Retry in", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, tc.main, tc.fallbacks...)
			_, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s-1", Model: "claude-fable-5", PromptBytes: 1 << 20})
			nr := noRoute(t, err)
			assert.Equal(t, tc.status, nr.Status)
			if tc.status == 401 {
				assert.Equal(t, "authentication_error", nr.ErrorType)
				assert.Equal(t, tc.message, nr.Message)
			} else {
				assert.Equal(t, "rate_limit_error", nr.ErrorType)
				assert.Contains(t, nr.Message, tc.message)
				assert.Greater(t, nr.RetryAfterMs, int64(0))
			}
			for _, f := range tc.fallbacks {
				assert.NotEmpty(t, reasonFor(nr, f.id).Reason, "every account explained")
			}
			assert.NotEmpty(t, reasonFor(nr, MainAccountID).Reason)
			assert.Equal(t, 0, env.fake.count("usage"))
			assert.Equal(t, 0, env.fake.count("token"))
		})
	}
	t.Run("46 after re-login the next request is served", func(t *testing.T) {
		env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{LastRefreshError: dead, Quota: fq(80, 80)})
		_, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s-1"})
		require.Error(t, err)
		env.engine.setMainCredentials(MainCredentials{Access: "main-access-2", Refresh: "main-refresh-2", Expires: epochMs(testStart.Add(8 * time.Hour))})
		r, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s-1"})
		require.NoError(t, err)
		assert.Equal(t, MainAccountID, r.AccountID)
	})
}

// Case 54: a 403 on the session's account migrates the session.
func TestReport_sticky403Migrates(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(100, 100)}, fb{id: "scarce", quota: fq(30, 30)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s-1", Model: "claude-opus-4-7", PromptBytes: 1000})
	require.NoError(t, err)
	require.Equal(t, MainAccountID, r.AccountID)
	require.Equal(t, &StickyInfo{Created: true}, r.Sticky)
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 403, Body: "forbidden", Replayable: true})
	require.NoError(t, err)
	require.Equal(t, ActionRetry, res.Action, res.Reason)
	assert.Equal(t, "scarce", res.Next.AccountID)
	assert.Equal(t, secret.Secret("access-scarce"), res.Next.Credential.Token)
	assert.Equal(t, &StickyInfo{Migrated: true}, res.Next.Sticky)
	// The session now lives on the new account.
	again, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s-1", Model: "claude-opus-4-7"})
	require.NoError(t, err)
	assert.Equal(t, "scarce", again.AccountID)
	assert.Equal(t, &StickyInfo{}, again.Sticky)
}

// Case 55: a 500 keeps affinity; a stream rate limit whose fresh quota
// says the 5h window resets within 15 minutes holds the session; the next
// request is held from fresh quota without reaching upstream; once the
// reset is further away the session migrates.
func TestReport_stickyRetainAndHold(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(100, 100)}, fb{id: "other", quota: fq(40, 40)})
	req := SelectRequest{SessionID: "session-55", Model: "claude-opus-4-7", PromptBytes: 4096}
	r, err := env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	require.Equal(t, MainAccountID, r.AccountID)

	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 500, Body: "temporary", Replayable: true})
	require.NoError(t, err)
	assert.Equal(t, ActionReturn, res.Action)
	assert.Equal(t, verdict.ClassTransient, res.Verdict.Class)

	env.fake.script("usage", scripted{status: 200, body: usageJSON(env.clock.Now(), 0, 50, 14*time.Minute)})
	res, err = env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 200, StreamRateLimit: true, Replayable: true})
	require.NoError(t, err)
	require.Equal(t, ActionHold, res.Action, res.Reason)
	assert.GreaterOrEqual(t, res.RetryAfterMs, int64(780_000))
	assert.LessOrEqual(t, res.RetryAfterMs, int64(900_000))
	require.NotNil(t, res.NoRoute)
	assert.Equal(t, stickyHoldMessage, res.NoRoute.Message)
	assert.Equal(t, "rate_limit_error", res.NoRoute.ErrorType)
	assert.Equal(t, 1, env.fake.count("usage"))

	_, err = env.engine.Select(env.ctx(), req)
	nr := noRoute(t, err)
	assert.Equal(t, 429, nr.Status)
	assert.Equal(t, stickyHoldMessage, nr.Message)
	assert.Equal(t, res.RetryAfterMs, nr.RetryAfterMs, "same session, same jitter")
	assert.Equal(t, 1, env.fake.count("usage"), "held from fresh quota")

	// Five minutes on the snapshot is stale; the new one resets in an hour.
	env.clock.Advance(5 * time.Minute)
	env.fake.mu.Lock()
	env.fake.scripts["usage"] = []scripted{{status: 200, body: usageJSON(env.clock.Now(), 0, 50, time.Hour)},
		{status: 200, body: usageJSON(env.clock.Now(), 40, 40, time.Hour)}}
	env.fake.mu.Unlock()
	r, err = env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	assert.Equal(t, "other", r.AccountID)
	assert.Equal(t, &StickyInfo{Migrated: true}, r.Sticky)
}

// Sticky assignments are stored hashed in the upstream shape, pruned after
// 7 days, and kept without file writes while the session is active.
func TestSticky_fileShapeAndPruning(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(90, 90)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "secret-session", Model: "claude-opus-4-7", PromptBytes: 0})
	require.NoError(t, err)
	require.Equal(t, MainAccountID, r.AccountID)
	require.NoFileExists(t, env.paths.RoutingState, "a new assignment is written behind")
	require.NoError(t, env.engine.Flush(env.ctx()))
	raw, err := os.ReadFile(env.paths.RoutingState)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "secret-session")
	var f map[string]any
	require.NoError(t, json.Unmarshal(raw, &f))
	assert.Equal(t, float64(1), f["version"])
	as, _ := f["assignments"].(map[string]any)
	key := sessionKey("secret-session")
	a, _ := as[fmt.Sprintf("%x", key[:])].(map[string]any)
	require.NotNil(t, a, "keyed by sha256 hex")
	assert.Equal(t, map[string]any{"accountId": "main", "family": "opus", "affinityModelId": "claude-opus-4-7", "assignedAt": float64(ms(testStart)),
		"lastSeenAt": float64(ms(testStart)), "initialInputBytes": float64(1), "quotaCheckedAt": float64(ms(freshAt))}, a)
	fi, err := filestore.StampOf(env.paths.RoutingState)
	require.NoError(t, err)

	env.clock.Advance(time.Minute)
	_, err = env.engine.Select(env.ctx(), SelectRequest{SessionID: "secret-session", Model: "claude-opus-4-7"})
	require.NoError(t, err)
	fi2, err := filestore.StampOf(env.paths.RoutingState)
	require.NoError(t, err)
	assert.True(t, fi.Same(fi2), "fast path writes nothing")

	// A model change re-assigns; an unknown key survives rewrites.
	require.NoError(t, os.WriteFile(env.paths.RoutingState, []byte(strings.Replace(string(raw), `"version":1`, `"version":1,"futureKey":{"x":1}`, 1)), 0o600))
	env.clock.Advance(8 * 24 * time.Hour)
	env.engine.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(env.clock.Now().Add(8 * time.Hour))})
	env.fake.script("usage", scripted{status: 200, body: usageJSON(env.clock.Now(), 90, 90, time.Hour)})
	_, err = env.engine.Select(env.ctx(), SelectRequest{SessionID: "other", Model: "claude-opus-4-7"})
	require.NoError(t, err)
	require.NoError(t, env.engine.Flush(env.ctx()))
	raw, err = os.ReadFile(env.paths.RoutingState)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &f))
	as, _ = f["assignments"].(map[string]any)
	assert.Len(t, as, 1, "the week-old session was pruned")
	assert.Contains(t, string(raw), `"futureKey":{"x":1}`)
}

func TestStickyFile_pruneLRU(t *testing.T) {
	f := &stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1, Assignments: map[string]*stickyAssignment{}}}
	f.reindex()
	now := policyNow
	for i := 0; i < stickyMax+10; i++ {
		f.set(sessionKey(fmt.Sprint(i)), &stickyAssignment{AccountID: "a", LastSeenAt: epochMs(now.Add(time.Duration(i) * time.Second))})
	}
	f.set(sessionKey("expired"), &stickyAssignment{AccountID: "a", LastSeenAt: epochMs(now.Add(-8 * 24 * time.Hour))})
	require.True(t, f.prune(now.Add(time.Hour)))
	assert.Len(t, f.Assignments, stickyMax)
	assert.Nil(t, f.lookup(sessionKey("expired")))
	for i := 0; i < 10; i++ {
		assert.Nil(t, f.lookup(sessionKey(fmt.Sprint(i))), "least recently seen evicted")
	}
	assert.NotNil(t, f.lookup(sessionKey(fmt.Sprint(stickyMax+9))))
}

func TestSticky_corruptFileIsAnError(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(90, 90)})
	require.NoError(t, os.WriteFile(env.paths.RoutingState, []byte("{not json"), 0o600))
	_, err := env.engine.Select(env.ctx(), SelectRequest{SessionID: "s"})
	require.ErrorIs(t, err, ErrCorruptFile)
	assert.Contains(t, err.Error(), "Invalid sticky routing state at "+env.paths.RoutingState)
	raw, _ := os.ReadFile(env.paths.RoutingState)
	assert.Equal(t, "{not json", string(raw), "never replaced")
}

// Case 22/killswitch: main below its kill threshold and no survivor gives
// upstream's killswitch 429 with retry-after = earliest reset + 60 s.
func TestSelect_killswitchNoRoute(t *testing.T) {
	env := routeEnv(t, `"killswitch":{"enabled":true}`, &record.MainState{Quota: fq(2, 80)}, fb{id: "fb", quota: fq(80, 3)})
	_, err := env.engine.Select(env.ctx(), SelectRequest{})
	nr := noRoute(t, err)
	assert.Equal(t, 429, nr.Status)
	// main's 5h resets 2 h after it was observed a minute ago.
	want := 2*time.Hour - time.Minute + 60*time.Second
	assert.Equal(t, want.Milliseconds(), nr.RetryAfterMs)
	assert.Equal(t, "Killswitch: no routable accounts. Retry in "+policy.RetryInText(want)+".", nr.Message)
	assert.Equal(t, "killswitch: 5h 2% < 5%", reasonFor(nr, MainAccountID).Reason)
	assert.Equal(t, "killswitch: 7d 3% < 10%", reasonFor(nr, "fb").Reason)
}
