package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pluginManifest writes a manifest for plugins/testdata/<fixture>.wasm
// into dir and returns its path and JSON. It asks for the longest call
// deadline a manifest may, so that no verdict depends on the machine's
// speed (the fixtures answer in microseconds).
func pluginManifest(t *testing.T, dir, id, fixture string) (string, map[string]any) {
	t.Helper()
	wasm, err := filepath.Abs(filepath.Join("..", "..", "plugins", "testdata", fixture+".wasm"))
	require.NoError(t, err)
	data, err := os.ReadFile(wasm)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	m := map[string]any{"id": id, "version": "1.0.0", "abi": "errclass v1", "wasm": wasm, "sha256": hex.EncodeToString(sum[:]),
		"limits": map[string]any{"callTimeoutMs": 1000}}
	b, err := json.Marshal(m)
	require.NoError(t, err)
	path := filepath.Join(dir, id+".json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path, m
}

type pluginList struct {
	Plugins []struct {
		ID     string           `json:"id"`
		State  string           `json:"state"`
		Error  string           `json:"error"`
		Calls  int64            `json:"calls"`
		Faults map[string]int64 `json:"faults"`
	} `json:"plugins"`
}

// TestPlugins_classifyListReload: errors/classify goes through a --plugin
// plugin, plugins/list reports it, and plugins/reload re-reads the config
// file's plugins array (a bad one fails the reload, the old chain serves).
func TestPlugins_classifyListReload(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "anthropic-auth.json")
	manifest, _ := pluginManifest(t, dir, "ok", "ok")
	cmd := exec.Command(serverBin, "--config", config, "--state", filepath.Join(dir, "state.json"),
		"--framing", "ndjson", "--plugin", manifest)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	p := spawnCmd(t, cmd, "ndjson")
	p.initialize(nil)

	m := p.call("errors/classify", map[string]any{"source": "usage", "status": 403})
	require.Nil(t, m.Error)
	assert.JSONEq(t, `{"class":"invalid_grant","retryAfterMs":1500,"reason":"wat fixture: 403 is invalid_grant","decidedBy":"plugin:ok"}`, string(m.Result))
	m = p.call("errors/classify", map[string]any{"source": "usage", "status": 401})
	require.Nil(t, m.Error)
	assert.Contains(t, string(m.Result), `"decidedBy":"builtin"`)

	var list pluginList
	m = p.call("plugins/list", nil)
	require.Nil(t, m.Error)
	require.NoError(t, json.Unmarshal(m.Result, &list))
	require.Len(t, list.Plugins, 1)
	assert.Equal(t, "ok", list.Plugins[0].ID)
	assert.Equal(t, "active", list.Plugins[0].State)
	assert.EqualValues(t, 2, list.Plugins[0].Calls)

	// The config file's plugins come first in the chain.
	_, trap := pluginManifest(t, dir, "trap", "trap")
	writeConfig(t, config, []any{trap})
	m = p.call("plugins/reload", nil)
	require.Nil(t, m.Error)
	list = pluginList{}
	require.NoError(t, json.Unmarshal(m.Result, &list))
	require.Len(t, list.Plugins, 2)
	assert.Equal(t, "trap", list.Plugins[0].ID)
	assert.Equal(t, "ok", list.Plugins[1].ID)
	m = p.call("errors/classify", map[string]any{"source": "usage", "status": 403})
	assert.Contains(t, string(m.Result), `"decidedBy":"plugin:trap"`)
	m = p.call("errors/classify", map[string]any{"source": "usage", "status": 500})
	assert.Contains(t, string(m.Result), `"decidedBy":"builtin"`)
	m = p.call("plugins/list", nil)
	assert.Contains(t, string(m.Result), `"faults":{"trap":1}`)

	// A bad plugin fails the reload; the previous chain keeps serving.
	_, bad := pluginManifest(t, dir, "nomarker", "nomarker")
	writeConfig(t, config, []any{bad})
	m = p.call("plugins/reload", nil)
	requireCode(t, m, -31005)
	assert.Contains(t, m.Error.Message, "plugin nomarker: ABI errclass v1 violation: missing export errclass_abi_v1")
	m = p.call("plugins/list", nil)
	list = pluginList{}
	require.NoError(t, json.Unmarshal(m.Result, &list))
	require.Len(t, list.Plugins, 2)
	assert.Equal(t, "trap", list.Plugins[0].ID)
}

// TestPlugins_badManifestDoesNotStopServer: a --plugin that cannot load is
// listed as rejected, and classification uses the built-in table.
func TestPlugins_badManifestDoesNotStopServer(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"id":"bad","abi":2,"wasm":"x.wasm","sha256":"00"}`), 0o600))
	p := spawn(t, "ndjson", "--plugin", bad)
	p.initialize(nil)
	m := p.call("errors/classify", map[string]any{"source": "usage", "status": 403})
	require.Nil(t, m.Error)
	assert.Contains(t, string(m.Result), `"decidedBy":"builtin"`)
	var list pluginList
	m = p.call("plugins/list", nil)
	require.NoError(t, json.Unmarshal(m.Result, &list))
	require.Len(t, list.Plugins, 1)
	assert.Equal(t, "rejected", list.Plugins[0].State)
	assert.Contains(t, list.Plugins[0].Error, "plugin bad: ")
}

func writeConfig(t *testing.T, path string, plugins []any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"version": 1, "accounts": []any{}, "plugins": plugins})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}
