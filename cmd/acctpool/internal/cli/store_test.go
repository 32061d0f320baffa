package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/cmd/acctpool/internal/storecmd"
	"github.com/acctpool/acctpool/core/pgstore"
	"github.com/acctpool/acctpool/internal/pgtest"
	"github.com/acctpool/acctpool/schema/validate"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// importedPool imports the fixture pool into a fresh database and returns
// the fixture's directory, the database's URL (with a password the test
// server ignores, to see it redacted), the key file, and the --now to
// judge at. The sticky assignments are moved to the present: an import,
// like every routing write, drops those idle for a week by the real clock.
func importedPool(t *testing.T) (dir, storeURL, keyFile, now string) {
	t.Helper()
	u, err := url.Parse(pgtest.DB(t))
	require.NoError(t, err)
	u.User = url.UserPassword("acctpool", "s3cret-pw")
	storeURL = u.String()
	keyFile = filepath.Join(t.TempDir(), "store.key")
	require.NoError(t, pgstore.WriteKeyFile(keyFile))
	dir = copyFixture(t, "pool")
	nowMs := time.Now().UnixMilli()
	shiftRouting(t, filepath.Join(dir, "anthropic-auth-routing-state.json"), nowMs-1767261600000)
	now = strconv.FormatInt(nowMs, 10)
	code, out, errOut := call(storecmd.Run, envFor(dir), "", "import", "--store", storeURL, "--store-key-file", keyFile,
		"--config", filepath.Join(dir, "anthropic-auth.json"), "--state", filepath.Join(dir, "anthropic-auth-state.json"),
		"--routing-state", filepath.Join(dir, "anthropic-auth-routing-state.json"))
	require.Equal(t, 0, code, "import: %s%s", out, errOut)
	return dir, storeURL, keyFile, now
}

// shiftRouting moves every time of a routing-state file by delta ms.
func shiftRouting(t *testing.T, path string, delta int64) {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc struct {
		Version     int                       `json:"version"`
		UpdatedAt   int64                     `json:"updatedAt"`
		Assignments map[string]map[string]any `json:"assignments"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	doc.UpdatedAt += delta
	for _, a := range doc.Assignments {
		for _, k := range []string{"assignedAt", "lastSeenAt", "quotaCheckedAt"} {
			a[k] = int64(a[k].(float64)) + delta
		}
	}
	b, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestStatusOnTheStore: status --json of a pool imported into the
// postgres store equals the files' status of the same pool, apart from the
// files and store fields; the store is read (not this machine's files,
// which are empty), named, and its password redacted.
func TestStatusOnTheStore(t *testing.T) {
	dir, storeURL, keyFile, now := importedPool(t)
	code, fromFiles, errOut := call(Status, envFor(dir), "", "--now", now, "--json")
	require.Empty(t, errOut)
	require.Equal(t, exitOK, code)

	elsewhere := t.TempDir() // a machine with no files of its own
	env := envFor(elsewhere, "ACCTPOOL_STORE", storeURL, "ACCTPOOL_STORE_KEY_FILE", keyFile)
	code, fromStore, errOut := call(Status, env, "", "--now", now, "--json")
	require.Empty(t, errOut)
	require.Equal(t, exitOK, code)
	require.NoError(t, validate.ValidateCLIStatus([]byte(fromStore)))
	assert.NotContains(t, fromStore, "s3cret-pw")

	var a, b map[string]any
	require.NoError(t, json.Unmarshal([]byte(fromFiles), &a))
	require.NoError(t, json.Unmarshal([]byte(fromStore), &b))
	assert.Nil(t, a["store"], "the files name no store")
	require.IsType(t, "", b["store"])
	assert.Contains(t, b["store"], "postgres postgres://acctpool:")
	assert.Contains(t, b["store"], "[redacted]")
	for _, m := range []map[string]any{a, b} {
		delete(m, "files")
		delete(m, "store")
	}
	assert.Equal(t, a, b, "the same pool, read from the store")
	assert.EqualValues(t, 2, b["summary"].(map[string]any)["stickySessions"], "the sticky sessions come from the store")

	// The screen names the store too, and so flags work as the environment.
	code, screen, errOut := call(Status, envFor(elsewhere), "", "--now", now, "--color", "never", "--store", storeURL, "--store-key-file", keyFile)
	require.Empty(t, errOut)
	require.Equal(t, exitOK, code)
	assert.Contains(t, screen, "shared pool: postgres postgres://acctpool:[redacted]@")
	assert.NotContains(t, screen, "s3cret-pw")
	_, fileScreen, _ := call(Status, envFor(dir), "", "--now", now, "--color", "never")
	assert.NotContains(t, fileScreen, "shared pool")
	entries, err := os.ReadDir(elsewhere)
	require.NoError(t, err)
	assert.Empty(t, entries, "reading the store writes nothing on this machine")
}

// TestCommandsOnTheStore: statusline and accounts list read the store as
// they read the files: the same output for the same pool.
func TestCommandsOnTheStore(t *testing.T) {
	dir, storeURL, keyFile, now := importedPool(t)
	env := envFor(t.TempDir(), "ACCTPOOL_STORE", storeURL, "ACCTPOOL_STORE_KEY_FILE", keyFile)
	for _, tc := range []struct {
		name string
		fn   Command
		args []string
	}{
		{"statusline", Statusline, []string{"--now", now}},
		{"accounts list", Accounts, []string{"list", "--now", now}},
		{"accounts list --json", Accounts, []string{"list", "--now", now, "--json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			codeF, outF, errF := call(tc.fn, envFor(dir), "", tc.args...)
			codeS, outS, errS := call(tc.fn, env, "", tc.args...)
			assert.Equal(t, codeF, codeS)
			assert.Equal(t, errF, errS)
			assert.Equal(t, outF, outS)
			assert.NotEmpty(t, outS)
		})
	}
}

// TestStoreFlagsRefused: a postgres store without its key file, or an
// unknown store, is a usage error that never repeats the password.
func TestStoreFlagsRefused(t *testing.T) {
	for _, tc := range []struct {
		name, store, want string
	}{
		{"no key file", "postgres://u:hunter2@db/pool", "--store-key-file"},
		{"unknown store", "mysql://u:hunter2@db/pool", "want files or a postgres:// URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := call(Status, envFor(t.TempDir()), "", "--store", tc.store)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, errOut, tc.want)
			assert.NotContains(t, errOut, "hunter2")
		})
	}
}

// TestCheckOnTheStore: check says that it validates this machine's files,
// not the pool in the store, and never prints the store's password.
func TestCheckOnTheStore(t *testing.T) {
	env := envFor(t.TempDir(), "ACCTPOOL_STORE", "postgres://u:hunter2@db.example/pool", "ACCTPOOL_STORE_KEY_FILE", "/k")
	_, out, _ := call(Check, env, "")
	assert.Contains(t, out, "note: the pool is in the store postgres postgres://u:[redacted]@db.example/pool; check validates this machine's files")
	assert.NotContains(t, out, "hunter2")
}
