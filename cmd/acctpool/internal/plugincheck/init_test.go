package plugincheck

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestInitGoBuildsAndPassesCheck writes the Go starter against this
// checkout (--sdk), builds it with its own build.sh (offline: the module
// cache and this module's go.sum), and checks it with its cases.json.
func TestInitGoBuildsAndPassesCheck(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to run build.sh")
	}
	t.Setenv("XDG_CACHE_HOME", testCache)
	dir := filepath.Join(t.TempDir(), "my-plugin")
	var out, errb bytes.Buffer
	require.Equal(t, ExitOK, Main([]string{"init", "--lang", "go", "--sdk", repoRoot, dir}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), "wrote the go starter plugin to "+dir)
	for _, f := range []string{"main.go", "go.mod", "build.sh", "cases.json", "README.md"} {
		assert.FileExists(t, filepath.Join(dir, f))
	}
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	assert.Equal(t, "module example.com/my-plugin\n\ngo 1.24\n\nrequire github.com/acctpool/acctpool v0.0.0\n\nreplace github.com/acctpool/acctpool => "+root+"\n", string(gomod))

	// Offline: the dependencies' checksums come from this module's go.sum.
	sum, err := os.ReadFile(filepath.Join(repoRoot, "go.sum"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o600))
	build := exec.Command("sh", "build.sh")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod")
	b, err := build.CombinedOutput()
	require.NoError(t, err, "build.sh: %s", b)
	assert.Contains(t, string(b), "wrote my-plugin.wasm and plugin.json")

	manifest := filepath.Join(dir, "plugin.json")
	var m map[string]any
	data, err := os.ReadFile(manifest)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &m), "%s", data)
	assert.Equal(t, "my-plugin", m["id"])
	assert.Equal(t, "my-plugin.wasm", m["wasm"])
	// The starter asks for 50 ms per call; a busy test machine must not
	// turn a healthy call into a timeout, so the check runs with the
	// host's maximum.
	m["limits"] = map[string]any{"memoryPages": 512, "callTimeoutMs": 1000}
	data, _ = json.Marshal(m)
	require.NoError(t, os.WriteFile(manifest, data, 0o600))

	out.Reset()
	errb.Reset()
	code := Main([]string{"check", "--cases", filepath.Join(dir, "cases.json"), manifest}, &out, &errb)
	assert.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	assert.Contains(t, out.String(), "28 cases: 4 changed by the plugin, 24 no opinion, 0 faults")
}

// TestInitAssemblyScript writes the AssemblyScript starter. Building it
// needs npm and the assemblyscript package from the registry, which tests
// do not fetch; the files are checked instead: the plugin id is filled in
// everywhere, package.json and cases.json parse, and the exports the ABI
// requires are there.
func TestInitAssemblyScript(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "usage-429")
	written, err := Init(InitOptions{Lang: "assemblyscript", Dir: dir})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"assembly/index.ts", "package.json", "manifest.mjs", "cases.json", "README.md"}, written)
	for _, f := range written {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.NotContains(t, string(b), "{{", f)
	}
	var pkg struct {
		Name    string            `json:"name"`
		Scripts map[string]string `json:"scripts"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &pkg))
	assert.Equal(t, "usage-429", pkg.Name)
	assert.Contains(t, pkg.Scripts["build"], "-o usage-429.wasm && node manifest.mjs")
	assert.Contains(t, pkg.Scripts["build"], "--use abort=assembly/index/myAbort", "the default env.abort import is not allow-listed")
	src, err := os.ReadFile(filepath.Join(dir, "assembly", "index.ts"))
	require.NoError(t, err)
	for _, export := range []string{"export function errclass_abi_v1", "export function errclass_alloc", "export function errclass_classify"} {
		assert.Contains(t, string(src), export)
	}
	mjs, err := os.ReadFile(filepath.Join(dir, "manifest.mjs"))
	require.NoError(t, err)
	assert.Contains(t, string(mjs), `id: "usage-429"`)
	cases, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	require.NoError(t, err)
	_, err = ParseCases(cases)
	assert.NoError(t, err)
	if node, err := exec.LookPath("node"); err == nil {
		out, err := exec.Command(node, "--check", filepath.Join(dir, "manifest.mjs")).CombinedOutput()
		assert.NoError(t, err, "manifest.mjs is valid JavaScript: %s", out)
	}

	_, err = Init(InitOptions{Lang: "assemblyscript", Dir: dir})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "is not empty"), err.Error())
}

func TestInitGoWithoutSDKLetsTidyChoose(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	_, err := Init(InitOptions{Lang: "go", Dir: dir, ID: "org-rule", Module: "example.org/rules/org"})
	require.NoError(t, err)
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	// A test binary is no released acctpool build, so no version is pinned.
	assert.Equal(t, "module example.org/rules/org\n\ngo 1.24\n", string(gomod))
	sh, err := os.ReadFile(filepath.Join(dir, "build.sh"))
	require.NoError(t, err)
	assert.Contains(t, string(sh), "-o org-rule.wasm .")
	st, err := os.Stat(filepath.Join(dir, "build.sh"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm())
}
