package core

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEngine_ensureMainFresh(t *testing.T) {
	t.Run("no credentials", func(t *testing.T) {
		env := newTestEnv(t, "", "")
		_, err := env.engine.ensureMainFresh(env.ctx(), "")
		assert.ErrorIs(t, err, ErrNoMain)
	})
	t.Run("expired token is refreshed and handed to the host", func(t *testing.T) {
		env := newTestEnv(t, `{"version":1,"mainAccountId":"m-1","accounts":[]}`, "")
		env.engine.setMainCredentials(MainCredentials{Access: "sk-ant-oat01-OLDMAIN", Refresh: "sk-ant-ort01-OLDMAIN", Expires: ms(testStart.Add(-time.Second))})
		env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-NEWMAIN","refresh_token":"sk-ant-ort01-NEWMAIN","expires_in":3600}`})
		c, err := env.engine.ensureMainFresh(env.ctx(), "")
		require.NoError(t, err)
		assert.Equal(t, secret.Secret("sk-ant-oat01-NEWMAIN"), c.Access)
		var got *MainCredentials
		for _, ev := range env.events {
			if ev.Kind == EventMainRefreshed {
				got = ev.Main
			}
		}
		require.NotNil(t, got, "accounts/mainRefreshed emitted")
		assert.Equal(t, secret.Secret("sk-ant-ort01-NEWMAIN"), got.Refresh)
		// A rejected token that was already replaced needs no token call.
		c, err = env.engine.ensureMainFresh(env.ctx(), "sk-ant-oat01-OLDMAIN")
		require.NoError(t, err)
		assert.Equal(t, secret.Secret("sk-ant-oat01-NEWMAIN"), c.Access)
		assert.Equal(t, 1, env.fake.count("token"))
	})
	t.Run("token 403 persists a 24 h main refresh error and latches", func(t *testing.T) {
		env := newTestEnv(t, `{"version":1,"mainAccountId":"m-1","accounts":[]}`, "")
		env.engine.setMainCredentials(MainCredentials{Access: "a", Refresh: "sk-ant-ort01-MAIN403", Expires: 1})
		env.fake.script("token", scripted{status: 403, body: "Forbidden"})
		_, err := env.engine.ensureMainFresh(env.ctx(), "")
		var ue *UpstreamError
		require.ErrorAs(t, err, &ue)
		assert.Equal(t, verdict.ClassOrgPolicy, ue.Verdict.Class)
		main := env.state()["main"].(map[string]any)
		rec := main["lastRefreshError"].(map[string]any)
		assert.EqualValues(t, 403, rec["status"])
		assert.Equal(t, false, rec["permanent"])
		assert.Equal(t, "m-1", rec["accountIdentity"])
		assert.EqualValues(t, ms(testStart.Add(24*time.Hour)), rec["nextRetryAt"])
		_, err = env.engine.ensureMainFresh(env.ctx(), "")
		assert.ErrorIs(t, err, ErrRefreshBackoff)
		assert.Contains(t, err.Error(), "Claude OAuth refresh is backed off for 86400s after: Claude OAuth refresh failed: 403")
		assert.Equal(t, 1, env.fake.count("token"))
	})
}

func TestEngine_login(t *testing.T) {
	env := newTestEnv(t, "", "")
	start, err := env.engine.LoginStart(env.ctx(), "max")
	require.NoError(t, err)
	u, err := url.Parse(start.URL)
	require.NoError(t, err)
	q := u.Query()
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, start.State, q.Get("state"))
	assert.Equal(t, anthropic.ClientID, q.Get("client_id"))
	assert.Equal(t, defaultRedirectURL, q.Get("redirect_uri"))

	env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-LOGIN","refresh_token":"sk-ant-ort01-LOGIN","expires_in":28800}`})
	_, err = env.engine.LoginFinish(env.ctx(), "code-1", "wrong-state", "work")
	assert.ErrorIs(t, err, ErrLoginState)
	assert.Equal(t, 0, env.fake.count("token"))

	// The callback page shows "code#state".
	_, err = env.engine.LoginFinish(env.ctx(), "code-1#"+start.State, "", "work")
	require.NoError(t, err)
	req := env.fake.last("token")
	assert.Equal(t, "authorization_code", req.body["grant_type"])
	assert.Equal(t, "code-1", req.body["code"])
	verifier := req.body["code_verifier"].(string)
	sum := sha256.Sum256([]byte(verifier))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), q.Get("code_challenge"), "the verifier matches the challenge")

	// A state is single use.
	_, err = env.engine.LoginFinish(env.ctx(), "code-2", start.State, "again")
	assert.ErrorIs(t, err, ErrLoginState)
}

// TestEngine_loginMain: a login finished with main makes the account the
// host's main account; its tokens reach the host only as a mainRefreshed
// event, never in the returned view, and no fallback is added.
func TestEngine_loginMain(t *testing.T) {
	env := newTestEnv(t, "", "")
	start, err := env.engine.LoginStart(env.ctx(), "max")
	require.NoError(t, err)
	env.fake.script("token", scripted{status: 200, body: `{"access_token":"sk-ant-oat01-MAINLOGIN","refresh_token":"sk-ant-ort01-MAINLOGIN","expires_in":28800}`})

	v, err := env.engine.LoginFinishMain(env.ctx(), "code-1", start.State)
	require.NoError(t, err)
	assert.True(t, v.Main)
	assert.True(t, v.HasCredential)
	b, err := json.Marshal(v)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "MAINLOGIN", "a view never carries a token")

	c, ok := env.engine.mainCredentials()
	require.True(t, ok)
	assert.Equal(t, secret.Secret("sk-ant-ort01-MAINLOGIN"), c.Refresh)

	env.evMu.Lock()
	var got *MainCredentials
	for _, ev := range env.events {
		if ev.Kind == EventMainRefreshed {
			got = ev.Main
		}
	}
	env.evMu.Unlock()
	require.NotNil(t, got, "the host is handed the new pair")
	assert.Equal(t, secret.Secret("sk-ant-oat01-MAINLOGIN"), got.Access)
	assert.Equal(t, secret.Secret("sk-ant-ort01-MAINLOGIN"), got.Refresh)
	assert.Positive(t, got.Expires)

	list, err := env.engine.ListAccounts(env.ctx())
	require.NoError(t, err)
	for _, a := range list {
		assert.True(t, a.Main, "no fallback was added: %s", a.ID)
	}
}
