package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// fixtureNow is the moment the fixtures under testdata/pool are written for.
const fixtureNow = "2026-01-01T10:00:00Z"

// copyFixture copies the files of testdata/<name> into a new temporary
// directory with mode 0600 (git does not keep modes) and returns it.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(filepath.Join("testdata", name))
	require.NoError(t, err)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("testdata", name, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), b, 0o600))
	}
	return dir
}

// envFor is an environment that points the commands at dir and nowhere
// else (no HOME config, no colour preference, no display).
func envFor(dir string, extra ...string) func(string) string {
	m := map[string]string{
		"OPENCODE_ANTHROPIC_AUTH_FILE": filepath.Join(dir, "anthropic-auth.json"),
		"HOME":                         dir,
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return func(k string) string { return m[k] }
}

// golden compares got with testdata/golden/name, rewriting it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "golden file missing; run go test -run %s -update", t.Name())
	require.Equal(t, string(want), got)
}

// call runs a command with stdin and returns its exit status, stdout and
// stderr.
func call(fn Command, env func(string) string, stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := fn(args, strings.NewReader(stdin), &out, &errb, env)
	return code, out.String(), errb.String()
}

func splitLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
