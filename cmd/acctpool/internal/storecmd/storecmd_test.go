package storecmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	configJSON = `{
  "version": 1,
  "mainAccountId": "fb-1",
  "main": {"type": "opencode", "provider": "anthropic"},
  "accounts": [
    {"id": "fb-1", "label": "work", "type": "oauth", "addedAt": 1700000000000, "futureKey": [1, 2]},
    {"id": "key-1", "type": "api", "baseURL": "https://gw.example.test"}
  ],
  "routing": {"strategy": "sticky-balanced"}
}
`
	stateJSON = `{
  "version": 1,
  "main": {"quotaToken": "0123456789abcdef"},
  "accounts": {
    "fb-1": {"access": "sk-ant-oat01-PLANTED", "refresh": "sk-ant-ort01-PLANTED", "expires": 1700000360000, "lastUsed": 5},
    "key-1": {"apiKey": "sk-ant-api03-PLANTED"}
  },
  "stateExtra": true
}
`
	routingJSON = `{"version": 1, "updatedAt": 1800000000000, "assignments": {"aa": {"accountId": "fb-1", "family": "opus", "assignedAt": 1, "lastSeenAt": 1799999000000, "initialInputBytes": 3, "quotaCheckedAt": 2}}}
`
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(args, nil, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

func TestImportExport_roundTrip(t *testing.T) {
	conn := pgtest.DB(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "key")
	code, _, stderr := run(t, nil, "keygen", key)
	require.Equal(t, 0, code, stderr)

	src := filepath.Join(dir, "src")
	require.NoError(t, os.MkdirAll(src, 0o700))
	files := map[string]string{"anthropic-auth.json": configJSON, "anthropic-auth-state.json": stateJSON, "anthropic-auth-routing-state.json": routingJSON}
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o600))
	}
	env := map[string]string{"ACCTPOOL_STORE": conn, "ACCTPOOL_STORE_KEY_FILE": key}
	for i := 0; i < 2; i++ { // idempotent: the second import changes nothing
		code, stdout, stderr := run(t, env, "import", "--config", filepath.Join(src, "anthropic-auth.json"))
		require.Equal(t, 0, code, stderr)
		assert.Contains(t, stdout, "imported 2 accounts")
	}
	db, err := pgx.Connect(context.Background(), conn)
	require.NoError(t, err)
	defer db.Close(context.Background())
	var changes int
	require.NoError(t, db.QueryRow(context.Background(), "SELECT count(*) FROM acctpool_change").Scan(&changes))
	assert.Equal(t, 2, changes, "the second import wrote nothing (one config and one routing change from the first)")

	dst := filepath.Join(dir, "dst")
	code, stdout, stderr := run(t, env, "export", "--config", filepath.Join(dst, "anthropic-auth.json"))
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "exported 2 accounts")
	for name, content := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		require.NoError(t, err, name)
		assert.JSONEq(t, content, string(got), "%s round trips, key order aside", name)
		fi, err := os.Stat(filepath.Join(dst, name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}

	code, _, stderr = run(t, env, "export", "--config", filepath.Join(dst, "anthropic-auth.json"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--force")
	code, _, stderr = run(t, env, "export", "--force", "--config", filepath.Join(dst, "anthropic-auth.json"))
	assert.Equal(t, 0, code, stderr)
}

func TestRun_usageErrors(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"no subcommand", nil, nil, 2, "Usage"},
		{"unknown subcommand", nil, []string{"sync"}, 2, "unknown subcommand"},
		{"no store", nil, []string{"import"}, 2, "postgres:// URL"},
		{"no key file", map[string]string{"ACCTPOOL_STORE": "postgres://u:hunter2@127.0.0.1:1/x"}, []string{"export", "--config", "/nonexistent/a.json"}, 1, "--store-key-file"},
		{"keygen without a file", nil, []string{"keygen"}, 2, "one argument"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := run(t, c.env, c.args...)
			assert.Equal(t, c.code, code)
			assert.Contains(t, stderr, c.want)
			assert.NotContains(t, stderr, "hunter2")
		})
	}
}
