package core

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	plantedAccess  = "sk-ant-oat01-ACCESSPLANT"
	plantedRefresh = "sk-ant-ort01-REFRESHPLANT"
)

func TestEngine_refreshFallback_failures(t *testing.T) {
	min := time.Minute
	cases := []struct {
		name      string
		script    []scripted
		calls     int
		class     verdict.Class
		delay     time.Duration
		permanent bool
		status    float64
	}{
		{"403 arms 24 h, not permanent", []scripted{{status: 403, body: "Forbidden"}}, 1, verdict.ClassOrgPolicy, 24 * time.Hour, false, 403},
		{"401 arms 24 h", []scripted{{status: 401, body: "unauthorized"}}, 1, verdict.ClassAuthExpired, 24 * time.Hour, false, 401},
		{"400 invalid_grant is permanent", []scripted{{status: 400, body: `{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}`}}, 1, verdict.ClassInvalidGrant, 24 * time.Hour, true, 400},
		{"400 invalid_client is not permanent", []scripted{{status: 400, body: `{"error":"invalid_client"}`}}, 1, verdict.ClassClientError, 24 * time.Hour, false, 400},
		{"429 without Retry-After is 5 min", []scripted{{status: 429, body: "limited"}}, 1, verdict.ClassRateLimited, 5 * min, false, 429},
		{"429 with Retry-After honours it", []scripted{{status: 429, body: "limited", header: map[string]string{"Retry-After": "120"}}}, 1, verdict.ClassRateLimited, 120 * time.Second, false, 429},
		{"500 retried three times then 5 min", []scripted{{status: 500, body: "Temporary failure"}}, 3, verdict.ClassTransient, 5 * min, false, 500},
		{"network errors retried then 5 min", []scripted{{close: true}}, 3, verdict.ClassTransient, 5 * min, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, st := oneFallback(testStart.Add(-time.Minute))
			env := newTestEnv(t, cfg, st)
			env.fake.script("token", tc.script...)
			_, err := env.engine.refreshFallback(env.ctx(), "fb", false)
			require.Error(t, err)
			var ue *UpstreamError
			require.ErrorAs(t, err, &ue)
			assert.Equal(t, tc.class, ue.Verdict.Class)
			assert.Equal(t, tc.calls, env.fake.count("token"))
			assert.Equal(t, tc.permanent, errors.Is(err, ErrInvalidGrant))

			rec, _ := env.accountState("fb")["lastRefreshError"].(map[string]any)
			require.NotNil(t, rec, "lastRefreshError persisted")
			failedAt := env.clock.Now()
			assert.EqualValues(t, ms(failedAt), rec["checkedAt"])
			assert.EqualValues(t, ms(failedAt.Add(tc.delay)), rec["nextRetryAt"])
			assert.Equal(t, tc.permanent, rec["permanent"])
			assert.EqualValues(t, 1, rec["retryCount"])
			if tc.status != 0 {
				assert.EqualValues(t, tc.status, rec["status"])
			}
			assert.Nil(t, env.accountState("fb")["lastQuotaRefreshError"], "a refresh pass records no quota error")

			// The latch holds: a second attempt makes no token call.
			_, err = env.engine.refreshFallback(env.ctx(), "fb", false)
			var be *BackoffError
			require.ErrorAs(t, err, &be)
			assert.ErrorIs(t, err, ErrRefreshBackoff)
			assert.Equal(t, tc.calls, env.fake.count("token"))
		})
	}
}

func TestEngine_refreshFallback_rotation(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(time.Hour))
	env := newTestEnv(t, cfg, st)
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-NEW","refresh_token":"sk-ant-ort01-NEW","expires_in":28800}`})

	a, err := env.engine.refreshFallback(env.ctx(), "fb", false)
	require.NoError(t, err)
	assert.Equal(t, secret.Secret("sk-ant-oat01-NEW"), a.State.Access)

	req := env.fake.last("token")
	assert.Equal(t, "refresh_token", req.body["grant_type"])
	assert.Equal(t, plantedRefresh, req.body["refresh_token"])
	assert.Equal(t, anthropic.ClientID, req.body["client_id"])
	assert.Equal(t, anthropic.RefreshScope, req.body["scope"])
	assert.Equal(t, "application/json", req.header.Get("Content-Type"))

	s := env.accountState("fb")
	assert.Equal(t, "sk-ant-oat01-NEW", s["access"])
	assert.Equal(t, "sk-ant-ort01-NEW", s["refresh"])
	assert.EqualValues(t, ms(testStart.Add(8*time.Hour)), s["expires"])
	assert.EqualValues(t, ms(testStart), s["lastRefreshedAt"])

	// Fresh now: no second call.
	_, err = env.engine.refreshFallback(env.ctx(), "fb", false)
	require.NoError(t, err)
	assert.Equal(t, 1, env.fake.count("token"))
	info, err := os.Stat(env.paths.State)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestEngine_refreshFallback_newRefreshTokenReleasesLatch(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(-time.Minute))
	env := newTestEnv(t, cfg, st)
	env.fake.script("token", scripted{status: 400, body: "invalid_grant"},
		scripted{status: 200, body: `{"access_token":"sk-ant-oat01-AFTER","expires_in":3600}`})
	_, err := env.engine.refreshFallback(env.ctx(), "fb", false)
	require.ErrorIs(t, err, ErrInvalidGrant)

	// The user logs in again elsewhere: a new refresh token lands in state.
	_, err = env.engine.store.UpdateState(env.ctx(), func(st *record.StateFile) error {
		st.Accounts["fb"].Refresh = "sk-ant-ort01-RELOGIN"
		return nil
	})
	require.NoError(t, err)
	a, err := env.engine.refreshFallback(env.ctx(), "fb", false)
	require.NoError(t, err)
	assert.Equal(t, secret.Secret("sk-ant-oat01-AFTER"), a.State.Access)
	assert.Equal(t, secret.Secret("sk-ant-ort01-RELOGIN"), a.State.Refresh, "refresh token kept when the grant has none")
	assert.Nil(t, env.accountState("fb")["lastRefreshError"])
	assert.Equal(t, 2, env.fake.count("token"))
}

func TestEngine_refreshFallback_secretsNeverLeak(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(-time.Minute))
	env := newTestEnv(t, cfg, st)
	// A hostile body echoes the tokens back.
	env.fake.script("token", scripted{status: 400, body: `{"error":"invalid_request","refresh_token":"` + plantedRefresh + `","hint":"Bearer ` + plantedAccess + `"}`})
	_, err := env.engine.refreshFallback(env.ctx(), "fb", false)
	require.Error(t, err)
	assert.NotContains(t, err.Error(), plantedRefresh)
	assert.NotContains(t, err.Error(), plantedAccess)
	rec := env.accountState("fb")["lastRefreshError"].(map[string]any)
	msg := rec["message"].(string)
	assert.True(t, strings.HasPrefix(msg, "Claude OAuth refresh failed: 400 — "), msg)
	assert.NotContains(t, msg, "REFRESHPLANT")
	assert.NotContains(t, msg, "ACCESSPLANT")
}
