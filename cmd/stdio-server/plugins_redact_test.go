package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPlugins_secretsNeverCrossTheBoundary runs the hostile echo plugin
// (it logs and echoes its whole input and emits a token of its own)
// through the spawned server. The tokens have no credential shape, so only
// the engine's known-secrets set (main tokens and every stored token)
// can catch them; the plugin's own token is also a stored access token.
// Every token is grepped in stdout (all RPC results) and stderr (logs at
// debug).
func TestPlugins_secretsNeverCrossTheBoundary(t *testing.T) {
	const pluginToken = "hardcoded-7f3a9c1e5b2d4086" // emitted by plugins/testdata/echo.wasm
	secrets := []string{"plainStoredAccess111", "plainStoredRefresh222", "plainMainAccess333", "plainMainRefresh444", "plainStoredAPIKey555", pluginToken}
	dir := t.TempDir()
	manifest, _ := pluginManifest(t, dir, "echo", "echo")
	cmd := exec.Command(serverBin, "--config", filepath.Join(dir, "anthropic-auth.json"), "--state", filepath.Join(dir, "state.json"),
		"--framing", "ndjson", "--log-level", "debug", "--plugin", manifest)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	p := spawnCmd(t, cmd, "ndjson")
	p.initialize(nil)

	for _, c := range []struct {
		method string
		params map[string]any
	}{
		{"accounts/add", map[string]any{"id": "fb1", "type": "oauth", "access": secrets[0], "refresh": secrets[1], "expires": 4102444800000}},
		{"accounts/add", map[string]any{"id": "fb2", "type": "oauth", "access": pluginToken, "refresh": "plainOtherRefresh666", "expires": 4102444800000}},
		{"accounts/add", map[string]any{"id": "api1", "type": "api", "apiKey": secrets[4], "baseURL": "http://127.0.0.1:1"}},
		{"accounts/setMain", map[string]any{"access": secrets[2], "refresh": secrets[3], "expires": 4102444800000}},
	} {
		m := p.call(c.method, c.params)
		require.Nil(t, m.Error, "%s: %+v", c.method, m.Error)
	}
	body := "visible-body-marker " + secrets[0] + " " + secrets[1] + " " + secrets[2] + " " + secrets[3] + " " + secrets[4]
	headers := map[string]string{"retry-after": "3", "x-should-retry": secrets[2], "www-authenticate": secrets[0], "request-id": secrets[4]}
	answer := p.call("errors/classify", map[string]any{"source": "messages", "status": 429, "headers": headers, "body": body, "message": secrets[3]})
	require.Nil(t, answer.Error)
	assert.Contains(t, string(answer.Result), `"decidedBy":"plugin:echo"`)
	assert.Contains(t, string(answer.Result), `[redacted]`)
	trap := p.call("errors/classify", map[string]any{"source": "messages", "status": 500, "headers": headers, "body": body})
	require.Nil(t, trap.Error)
	list := p.call("plugins/list", nil)
	require.Nil(t, list.Error)
	assert.Contains(t, string(list.Result), `"trap":1`)
	assert.Contains(t, string(list.Result), `guest output`)

	require.NoError(t, p.stdin.Close())
	p.exitCode()
	out, logs := p.stdout.String(), p.stderr.String()
	assert.Contains(t, logs, "visible-body-marker", "the plugin's log lines reached stderr")
	for _, s := range secrets {
		assert.NotContains(t, out, s, "a token reached stdout")
		assert.NotContains(t, logs, s, "a token reached stderr")
	}
}
