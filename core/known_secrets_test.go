package core

import (
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestKnownSecrets: the host's main tokens and every stored token (access,
// refresh, API key) are in the set the plugin host redacts with, and a
// token written later is seen without a restart.
func TestKnownSecrets(t *testing.T) {
	cfg := `{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth","addedAt":1},{"id":"key","label":"key","type":"api","baseURL":"https://gw.example","addedAt":2}]}`
	st := `{"version":1,"accounts":{"fb":{"access":"plainFBaccess","refresh":"plainFBrefresh","expires":1},"key":{"apiKey":"plainAPIkey"}}}`
	env := newTestEnv(t, cfg, st)
	assert.ElementsMatch(t, []secret.Secret{"plainFBaccess", "plainFBrefresh", "plainAPIkey"}, env.engine.KnownSecrets(env.ctx()))

	_, err := env.engine.SetMain(env.ctx(), MainCredentials{Access: "plainMAINaccess", Refresh: "plainMAINrefresh", Expires: ms(testStart.Add(time.Hour))})
	require.NoError(t, err)
	_, err = env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "key", APIKey: secretPtr("plainNEWkey")})
	require.NoError(t, err)
	assert.ElementsMatch(t, []secret.Secret{"plainMAINaccess", "plainMAINrefresh", "plainFBaccess", "plainFBrefresh", "plainNEWkey"},
		env.engine.KnownSecrets(env.ctx()))
}

func secretPtr(s secret.Secret) *secret.Secret { return &s }
