package core

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEngine_AddAccount(t *testing.T) {
	env := newTestEnv(t, "", "")
	v, err := env.engine.AddAccount(env.ctx(), AccountSpec{Label: "work", Type: record.AccountOAuth,
		Access: plantedAccess, Refresh: plantedRefresh, Expires: ms(testStart.Add(8 * time.Hour))})
	require.NoError(t, err)
	assert.Equal(t, "work", v.Label)
	assert.True(t, v.HasCredential)
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "PLANT", "views never carry tokens")

	cfg, err := os.ReadFile(env.paths.Config)
	require.NoError(t, err)
	assert.NotContains(t, string(cfg), "PLANT", "credentials never go to the config file")
	assert.Contains(t, string(cfg), `"label": "work"`)
	st := env.accountState(v.ID)
	assert.Equal(t, plantedRefresh, st["refresh"])
	assert.NotEmpty(t, st["authLineageId"])

	// Same label again = re-login: same id, addedAt kept, errors dropped.
	_, err = env.engine.store.UpdateState(env.ctx(), func(s *record.StateFile) error {
		s.Accounts[v.ID].LastRefreshError = &record.OpError{Message: "x", CheckedAt: 1, NextRetryAt: ms(testStart.Add(time.Hour))}
		return nil
	})
	require.NoError(t, err)
	env.clock.Advance(time.Hour)
	v2, err := env.engine.AddAccount(env.ctx(), AccountSpec{Label: "work", Type: record.AccountOAuth, Refresh: "sk-ant-ort01-SECOND"})
	require.NoError(t, err)
	assert.Equal(t, v.ID, v2.ID)
	assert.Nil(t, v2.LastRefreshError)
	list, err := env.engine.ListAccounts(env.ctx())
	require.NoError(t, err)
	require.Len(t, list, 2, "main and one fallback")
	assert.True(t, list[0].Main)
}

func TestEngine_AddAccount_invalid(t *testing.T) {
	cases := []struct {
		name string
		spec AccountSpec
		want []string
	}{
		{"no type", AccountSpec{Label: "x"}, []string{"field type"}},
		{"oauth without refresh", AccountSpec{Type: record.AccountOAuth}, []string{"field refresh"}},
		{"api without url and key", AccountSpec{Type: record.AccountAPI}, []string{"field baseURL", "field apiKey"}},
		{"api with credentials in url", AccountSpec{Type: record.AccountAPI, BaseURL: "https://u:p@example.com", APIKey: "k"}, []string{"field baseURL"}},
		{"api with bad header", AccountSpec{Type: record.AccountAPI, BaseURL: "https://example.com", APIKey: "k", AuthHeader: "cookie"}, []string{"field authHeader"}},
		{"reserved id", AccountSpec{ID: "main", Type: record.AccountOAuth, Refresh: "r"}, []string{"reserved"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, "", "")
			_, err := env.engine.AddAccount(env.ctx(), tc.spec)
			require.ErrorIs(t, err, ErrConfigInvalid)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			_, statErr := os.Stat(env.paths.Config)
			assert.True(t, os.IsNotExist(statErr), "nothing written")
		})
	}
}

func TestEngine_UpdateRemoveAccount(t *testing.T) {
	env := newTestEnv(t, "", "")
	var ids []string
	for _, l := range []string{"a", "b", "c"} {
		v, err := env.engine.AddAccount(env.ctx(), AccountSpec{Label: l, Type: record.AccountOAuth, Refresh: secret.Secret("sk-ant-ort01-" + l)})
		require.NoError(t, err)
		ids = append(ids, v.ID)
	}
	pos, off := 0, false
	v, err := env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "c", Position: &pos, Enabled: &off})
	require.NoError(t, err)
	assert.Equal(t, 0, v.Order)
	assert.False(t, v.Enabled)
	assert.False(t, v.Usable)
	assert.NotEmpty(t, v.Reason)

	bad := 9
	_, err = env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "a", Position: &bad})
	assert.ErrorIs(t, err, ErrConfigInvalid)
	url := "https://example.com"
	_, err = env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "a", BaseURL: &url})
	assert.ErrorIs(t, err, ErrConfigInvalid, "baseURL is for API routes")

	require.NoError(t, env.engine.RemoveAccount(env.ctx(), "b"))
	assert.Nil(t, env.accountState(ids[1]), "state pruned with the account")
	assert.ErrorIs(t, env.engine.RemoveAccount(env.ctx(), "b"), ErrNoAccount)
	list, err := env.engine.ListAccounts(env.ctx())
	require.NoError(t, err)
	var labels []string
	for _, a := range list[1:] {
		labels = append(labels, a.Label)
	}
	assert.Equal(t, []string{"c", "a"}, labels)
}

func TestEngine_SetMainAndResetBackoff(t *testing.T) {
	env := newTestEnv(t, "", "")
	_, err := env.engine.SetMain(env.ctx(), MainCredentials{})
	assert.ErrorIs(t, err, ErrConfigInvalid)
	v, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: plantedAccess, Refresh: plantedRefresh, Expires: ms(testStart.Add(time.Hour))})
	require.NoError(t, err)
	assert.True(t, v.Main)
	snap, err := env.engine.store.Load(env.ctx())
	require.NoError(t, err)
	id := snap.Config.MainAccountID
	assert.Len(t, id, 36, "a main account id is minted once")
	_, err = env.engine.SetMain(env.ctx(), MainCredentials{Refresh: "sk-ant-ort01-OTHER"})
	require.NoError(t, err)
	snap, err = env.engine.store.Load(env.ctx())
	require.NoError(t, err)
	assert.Equal(t, id, snap.Config.MainAccountID, "never replaced")

	_, err = env.engine.store.UpdateState(env.ctx(), func(st *record.StateFile) error {
		ensureMain(st).LastRefreshError = &record.OpError{Message: "m", CheckedAt: ms(testStart), NextRetryAt: ms(testStart.Add(time.Hour)), AccountIdentity: id}
		return nil
	})
	require.NoError(t, err)
	v, err = env.engine.GetAccount(env.ctx(), MainAccountID)
	require.NoError(t, err)
	assert.NotZero(t, v.RefreshBackoffUntil)
	v, err = env.engine.ResetBackoff(env.ctx(), MainAccountID)
	require.NoError(t, err)
	assert.Zero(t, v.RefreshBackoffUntil)
	main := env.state()["main"].(map[string]any)
	assert.EqualValues(t, ms(testStart), main["refreshErrorClearedAt"])
}

func TestEngine_UpdateConfig(t *testing.T) {
	env := newTestEnv(t, `{"version":1,"accounts":[],"customKey":{"kept":true}}`, "")
	_, err := env.engine.UpdateConfig(env.ctx(), map[string]json.RawMessage{"acounts": json.RawMessage(`[]`)})
	require.ErrorIs(t, err, ErrConfigInvalid)
	assert.Contains(t, err.Error(), "acounts")
	_, err = env.engine.UpdateConfig(env.ctx(), map[string]json.RawMessage{"quota": json.RawMessage(`"yes"`)})
	require.ErrorIs(t, err, ErrConfigInvalid, "a malformed section is refused")
	cfg, err := env.engine.UpdateConfig(env.ctx(), map[string]json.RawMessage{"routing": json.RawMessage(`{"mode":"sticky-balanced"}`)})
	require.NoError(t, err)
	assert.JSONEq(t, `{"mode":"sticky-balanced"}`, string(cfg["routing"]))
	raw, err := os.ReadFile(env.paths.Config)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `"customKey"`, "unknown keys survive")
	assert.False(t, strings.Contains(string(raw), `"quota"`))
}

func TestEngine_passes(t *testing.T) {
	cfg := `{"version":1,"accounts":[{"id":"due","type":"oauth"},{"id":"fresh","type":"oauth"},{"id":"off","type":"oauth","enabled":false},{"id":"key","type":"api","baseURL":"https://example.com"}]}`
	st := `{"version":1,"accounts":{
		"due":{"access":"sk-ant-oat01-DUE","refresh":"sk-ant-ort01-DUE","expires":` + itoa(ms(testStart.Add(time.Hour))) + `},
		"fresh":{"access":"sk-ant-oat01-FRESH","refresh":"sk-ant-ort01-FRESH","expires":` + itoa(ms(testStart.Add(7*time.Hour))) + `},
		"off":{"access":"a","refresh":"r","expires":1},
		"key":{"apiKey":"sk-ant-api-KEY"}}}`
	env := newTestEnv(t, cfg, st)
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-NEW","expires_in":28800}`})
	sum, err := env.engine.RefreshDue(env.ctx())
	require.NoError(t, err)
	outcomes := map[string]string{}
	for _, r := range sum.Results {
		outcomes[r.Account] = r.Outcome
	}
	assert.Equal(t, map[string]string{"due": OutcomeRefreshed, "fresh": OutcomeSkipped, "off": OutcomeSkipped, "key": OutcomeSkipped}, outcomes)
	assert.Equal(t, 1, env.fake.count("token"))

	env.fake.script("usage", scripted{status: 200, body: usageOK}, scripted{status: 403, body: usagePermissionErr})
	sum, err = env.engine.RefreshQuotaDue(env.ctx())
	require.NoError(t, err)
	byID := map[string]PassResult{}
	for _, r := range sum.Results {
		byID[r.Account] = r
	}
	assert.Equal(t, OutcomeFetched, byID["due"].Outcome)
	assert.Equal(t, OutcomeFailed, byID["fresh"].Outcome)
	assert.Equal(t, verdict.ClassOrgPolicy, byID["fresh"].Class)
	assert.Nil(t, env.accountState("fresh")["lastQuotaRefreshError"], "usage 403 persists nothing")

	// Second pass: "due" is fresh now, "fresh" is probed again (nothing latched).
	sum, err = env.engine.RefreshQuotaDue(env.ctx())
	require.NoError(t, err)
	for _, r := range sum.Results {
		byID[r.Account] = r
	}
	assert.Equal(t, OutcomeSkipped, byID["due"].Outcome)
	assert.Equal(t, OutcomeFailed, byID["fresh"].Outcome)
	assert.Equal(t, 3, env.fake.count("usage"))

	_, err = env.engine.store.UpdateConfig(env.ctx(), func(c *record.ConfigFile, _ *record.StateFile) error {
		c.Extra = record.Extra{"refresh": json.RawMessage(`{"enabled":false}`)}
		return nil
	})
	require.NoError(t, err)
	sum, err = env.engine.RefreshDue(env.ctx())
	require.NoError(t, err)
	require.Len(t, sum.Results, 1)
	assert.Equal(t, "refresh.enabled is false", sum.Results[0].Reason)
}

func TestEngine_SetMain_newRefreshTokenRetiresOldError(t *testing.T) {
	yes := true
	cases := []struct {
		name      string
		record    record.OpError
		first     secret.Secret
		second    secret.Secret
		wantClear bool
	}{
		{"record without fingerprint, host re-login", record.OpError{Status: 400, Permanent: &yes}, "sk-ant-ort01-OLD", "sk-ant-ort01-NEW", true},
		{"record without fingerprint, same token again", record.OpError{Status: 400, Permanent: &yes}, "sk-ant-ort01-OLD", "sk-ant-ort01-OLD", false},
		{"record bound to the old token", record.OpError{Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("sk-ant-ort01-OLD").Fingerprint()}, "sk-ant-ort01-OLD", "sk-ant-ort01-NEW", true},
		{"record bound to the token handed over", record.OpError{Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("sk-ant-ort01-NEW").Fingerprint()}, "sk-ant-ort01-NEW", "sk-ant-ort01-NEW", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t, `{"version":1,"mainAccountId":"m-1","accounts":[]}`, "")
			rec := tc.record
			rec.Message, rec.CheckedAt, rec.NextRetryAt = "Claude OAuth refresh failed: 400", ms(testStart), ms(testStart.Add(24*time.Hour))
			_, err := env.engine.store.UpdateState(env.ctx(), func(st *record.StateFile) error { ensureMain(st).LastRefreshError = &rec; return nil })
			require.NoError(t, err)
			_, err = env.engine.SetMain(env.ctx(), MainCredentials{Access: "a1", Refresh: tc.first})
			require.NoError(t, err)
			_, err = env.engine.SetMain(env.ctx(), MainCredentials{Access: "a2", Refresh: tc.second})
			require.NoError(t, err)
			main, _ := env.state()["main"].(map[string]any)
			assert.Equal(t, tc.wantClear, main["lastRefreshError"] == nil)
		})
	}
}
