package cli

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckFindings(t *testing.T) {
	const state = `{"version":1,"accounts":{"a":{"refresh":"r"}}}`
	const oneAccount = `"accounts":[{"id":"a","type":"oauth"}]`
	cases := []struct {
		name, config, state string
		want                []string // lines after the three file lines, with $C and $S for the paths
		code                int
	}{
		{name: "clean", config: `{"version":1,` + oneAccount + `}`, state: state,
			want: []string{"no problems found"}},
		{name: "syntax error with line and column", config: "{\n  \"version\": 1,\n  \"accounts\": [}\n", state: state, code: exitNone,
			want: []string{
				"error: $C:3:16: not valid JSON (unexpected character '}' looking for beginning of value); the file is left untouched and nothing that needs it runs until it is fixed by hand (removing it deletes what it holds: the account list and settings)",
				"1 error, 0 warnings"}},
		{name: "wrong-typed settings with defaults", config: `{"version":1,"routing":{"mode":"round-robin"},"quota":{"checkIntervalMinutes":0.5,"minimumRemaining":{"five_hour":10,"5h":20}},` + oneAccount + `}`, state: state,
			want: []string{
				`warning: $C: quota.checkIntervalMinutes: found 0.5 (a number), expected a number of minutes, at least 1; default used: 1 for values below 1 (5 when absent)`,
				`warning: $C: quota.minimumRemaining.5h: found 20 (a number), expected only one of five_hour and its alias 5h; five_hour wins; 5h is ignored`,
				`warning: $C: routing.mode: found "round-robin" (a string), expected main-first, fallback-first or sticky-balanced; default used: main-first`,
				"0 errors, 3 warnings"}},
		{name: "a wrong-typed setting is a warning: core uses the default", config: `{"version":1,"killswitch":{"enabled":"yes"},` + oneAccount + `}`, state: state,
			want: []string{
				`warning: $C: killswitch.enabled: found "yes" (a string), expected true or false; default used: false`,
				"0 errors, 1 warning"}},
		{name: "broken accounts", config: `{"version":1,"accounts":[{"type":"oauth"},{"id":"a","type":"oauth","enabled":"no"},{"id":"a","type":"x"},{"id":"k","type":"api","baseURL":"ftp://x"}]}`,
			state: `{"version":1,"accounts":{"a":{"refresh":"r"},"k":{"apiKey":"sk-ant-api03-SECRET"}}}`, code: exitNone,
			want: []string{
				`error: $C: accounts[0].id: found missing, expected a non-empty string; the file cannot be loaded until this is fixed`,
				`error: $C: accounts[1].enabled: found "no" (a string), expected true or false; the file cannot be loaded until this is fixed`,
				`error: $C: accounts[2].id: found "a" (a string), expected an id no other account has (accounts[1] has it); both entries share one state entry and one set of tokens; give one a new id or remove it`,
				`error: $C: accounts[2].type: found "x" (a string), expected oauth or api; the account cannot be used`,
				`error: $C: accounts[3].baseURL: found "ftp://x" (a string), expected an http(s) URL without credentials; the account cannot be used`,
				"5 errors, 0 warnings"}},
		{name: "state problems never show secrets", config: `{"version":1,"accounts":[{"id":"a","type":"oauth"},{"id":"b","type":"oauth"}]}`,
			state: `{"version":1,"accounts":{"a":{"refresh":12345,"quota":{"five_hour":{"remainingPercent":140,"usedPercent":0,"resetsAt":"soon","checkedAt":1}},"lastRefreshError":{"checkedAt":1}},"gone":{"refresh":"sk-ant-ort01-GONE"}}}`, code: exitNone,
			want: []string{
				`warning: $S: accounts.a.lastRefreshError.message: found missing, expected a string; the record is ignored`,
				`warning: $S: accounts.a.quota.five_hour.remainingPercent: found 140 (a number), expected a percentage 0..100; read as the nearest of 0 and 100`,
				`warning: $S: accounts.a.quota.five_hour.resetsAt: found "soon" (a string), expected an RFC 3339 time; the reset is unknown`,
				`error: $S: accounts.a.refresh: found a number, expected a string; the file cannot be loaded until this is fixed`,
				`warning: $S: accounts.b.refresh: found missing, expected the account's refresh token; the account cannot be used; run: acctpool login --replace b`,
				`warning: $S: accounts.gone: found an entry for an account the config does not list, expected every state entry to have an account in the config; the next write deletes this entry and its tokens; add the account back to the config first if you need it`,
				"1 error, 5 warnings"}},
		{name: "missing config", state: "",
			want: []string{`warning: $C: the file does not exist; the empty config is used: main only, default settings`, "0 errors, 1 warning"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writePool(t, tc.config, tc.state)
			before := snapshotDir(t, dir)
			code, out, errOut := call(Check, envFor(dir), "")
			require.Empty(t, errOut)
			assert.Equal(t, tc.code, code, out)
			lines := splitLines(out)
			require.GreaterOrEqual(t, len(lines), 3, out)
			c, s := filepath.Join(dir, "anthropic-auth.json"), filepath.Join(dir, "anthropic-auth-state.json")
			var want []string
			for _, w := range tc.want {
				want = append(want, strings.NewReplacer("$C", c, "$S", s).Replace(w))
			}
			assert.Equal(t, want, lines[3:])
			assert.NotContains(t, out, "SECRET")
			assert.NotContains(t, out, "GONE")
			assert.Equal(t, before, snapshotDir(t, dir), "check must not change any file")
		})
	}
}

func TestCheckModesAndDirectories(t *testing.T) {
	dir := writePool(t, `{"version":1,"accounts":[{"id":"a","type":"oauth"}]}`, `{"version":1,"accounts":{"a":{"refresh":"r"}}}`)
	state := filepath.Join(dir, "anthropic-auth-state.json")
	require.NoError(t, os.Chmod(state, 0o644))
	missing := filepath.Join(dir, "nope", "routing.json")
	code, out, _ := call(Check, envFor(dir, "OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE", missing), "")
	assert.Equal(t, exitNone, code)
	assert.Contains(t, out, "error: "+state+": found mode 0644 (readable or writable by group or others), expected mode 0600; it holds tokens that other users can read; run: chmod 600 "+state+"\n")
	assert.Contains(t, out, "warning: "+filepath.Dir(missing)+": the directory does not exist; acctpool creates it when it first writes a file there\n")
}

func TestCheckPlugins(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "p.wasm")
	require.NoError(t, os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o600))
	cfg := `{"version":1,"accounts":[],"plugins":[{"id":"ok","version":"1","abi":"errclass v1","wasm":"` + wasm + `","sha256":"` + strings.Repeat("0", 64) + `"},{"id":"bad","abi":"errclass v1","wasm":"x","sha256":"zz","typo":1}]}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth.json"), []byte(cfg), 0o600))
	code, out, _ := call(Check, envFor(dir), "")
	assert.Equal(t, exitNone, code)
	assert.Contains(t, out, "plugins[0].sha256: found \""+strings.Repeat("0", 64)[:39]+"…\" (a string), expected the module's digest ")
	assert.Contains(t, out, "error: "+filepath.Join(dir, "anthropic-auth.json")+": plugins[1]: ")
}

// snapshotDir returns every file's content and mode below dir.
func snapshotDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		out[p] = info.Mode().String() + " " + string(b)
		return err
	}))
	return out
}

func TestLogFindings(t *testing.T) {
	dir := writePool(t, `{"version":1,"routing":{"mode":"round-robin"},"accounts":[{"id":"a","type":"oauth"}]}`, `{"version":1,"accounts":{"a":{"refresh":"r"}}}`)
	var buf bytes.Buffer
	LogFindings(context.Background(), (&common{}).paths(envFor(dir)), slog.New(slog.NewTextHandler(&buf, nil)))
	assert.Equal(t, 1, strings.Count(buf.String(), "\n"), buf.String())
	assert.Contains(t, buf.String(), "level=WARN")
	assert.Contains(t, buf.String(), `routing.mode: found \"round-robin\" (a string)`)
}
