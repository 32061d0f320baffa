package core

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tempStore returns a store over files in a fresh directory.
func tempStore(t testing.TB, opts StoreOptions) *Store {
	t.Helper()
	dir := t.TempDir()
	opts.Paths = Paths{
		Config: filepath.Join(dir, ConfigFileName),
		State:  filepath.Join(dir, StateFileName),
	}
	s, err := NewStore(opts)
	require.NoError(t, err)
	return s
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// decodeMap reads a file as a generic JSON object.
func decodeMap(t testing.TB, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), "valid JSON: %s", path)
	return m
}

// assertNoLeftovers checks that the directory holds only the given files:
// no temporary files, lock files or eviction markers.
func assertNoLeftovers(t testing.TB, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
		fi, err := e.Info()
		require.NoError(t, err)
		if !e.IsDir() {
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "mode of %s", e.Name())
		}
	}
	assert.ElementsMatch(t, names, got)
}

const plantedToken = "sk-ant-ort01-PLANTEDsecretTOKENvalue0123456789"

func TestStore_corruptFile(t *testing.T) {
	cases := []struct {
		name    string
		file    string // "config" or "state"
		content string
	}{
		{"config is truncated JSON", "config", `{"version":1,"accounts":[{"id":"a","refresh":"` + plantedToken},
		{"state is truncated JSON", "state", `{"version":1,"accounts":{"a":{"refresh":"` + plantedToken},
		{"config is not an object", "config", `["` + plantedToken + `"]`},
		{"state is empty", "state", ``},
		{"state is null", "state", `null`},
	}
	updates := []struct {
		name string
		run  func(s *Store) error
	}{
		{"Load", func(s *Store) error { _, err := s.Load(context.Background()); return err }},
		{"UpdateState", func(s *Store) error {
			_, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
				st.Extra = record.Extra{"touched": json.RawMessage(`true`)}
				return nil
			})
			return err
		}},
		{"UpdateConfig", func(s *Store) error {
			_, err := s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
				cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: "new", Type: record.AccountOAuth})
				return nil
			})
			return err
		}},
	}
	for _, tc := range cases {
		for _, up := range updates {
			t.Run(tc.name+"/"+up.name, func(t *testing.T) {
				s := tempStore(t, StoreOptions{})
				p := s.Paths()
				writeFile(t, p.Config, `{"version":1,"accounts":[{"id":"a","type":"oauth"}]}`)
				writeFile(t, p.State, `{"version":1,"accounts":{"a":{"refresh":"rt"}}}`)
				bad := p.Config
				if tc.file == "state" {
					bad = p.State
				}
				writeFile(t, bad, tc.content)
				before := map[string][]byte{}
				for _, f := range []string{p.Config, p.State} {
					before[f], _ = os.ReadFile(f)
				}

				err := up.run(s)
				require.ErrorIs(t, err, ErrCorruptFile)
				assert.Contains(t, err.Error(), "account store at "+bad+" is corrupt or unreadable")
				assert.Contains(t, err.Error(), "fix or remove it")
				assert.NotContains(t, err.Error(), "PLANTED")
				for _, f := range []string{p.Config, p.State} {
					after, _ := os.ReadFile(f)
					assert.Equal(t, string(before[f]), string(after), "%s unchanged", filepath.Base(f))
				}
				assertNoLeftovers(t, filepath.Dir(p.Config), ConfigFileName, StateFileName)
			})
		}
	}
}

func TestStore_unreadableFile(t *testing.T) {
	s := tempStore(t, StoreOptions{})
	require.NoError(t, os.Mkdir(s.Paths().State, 0o700)) // EISDIR on read
	_, err := s.Load(context.Background())
	require.ErrorIs(t, err, ErrCorruptFile)
	assert.Contains(t, err.Error(), s.Paths().State)
	assert.Contains(t, err.Error(), "is a directory")
}

// Every key acctpool does not model survives a round trip through both
// update paths: at the top level, in main and in account entries, in both
// files.
func TestStore_unknownKeysSurvive(t *testing.T) {
	config := `{
  "version": 1,
  "mainAccountId": "m-1",
  "main": {"type": "opencode", "provider": "anthropic", "futureMain": 1},
  "routing": {"mode": "sticky-balanced"},
  "killswitch": {"enabled": true, "accounts": {"a": {"5h": 3}}},
  "futureTop": {"nested": [1, 2, {"x": null}]},
  "accounts": [
    {"id": "a", "label": "A", "type": "oauth", "addedAt": 5, "claustrumScopedCredentialId": "c-1", "futureAccount": "keep"},
    {"id": "b", "type": "api", "baseURL": "https://gw.example", "authHeader": "x-api-key", "futureApi": [true]}
  ]
}`
	state := `{
  "version": 1,
  "futureStateTop": "keep",
  "main": {"quotaToken": "fp", "prime": {"count": 3}, "primeAuthLineageId": "l-1"},
  "accounts": {
    "a": {"refresh": "rt-a", "access": "at-a", "expires": 10, "prime": {"x": 1}, "claustrumScopedState": "s",
          "quota": {"five_hour": {"usedPercent": 10, "remainingPercent": 90, "checkedAt": 3}, "scoped": [], "source": "poll"}},
    "b": {"apiKey": "k-b", "futureApiState": 7}
  }
}`
	s := tempStore(t, StoreOptions{})
	p := s.Paths()
	writeFile(t, p.Config, config)
	writeFile(t, p.State, state)
	_, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
		st.Accounts["a"].LastUsed = 99
		return nil
	})
	require.NoError(t, err)
	_, err = s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
		cfg.Accounts[0].Label = "A2"
		return nil
	})
	require.NoError(t, err)

	var wantCfg, wantSt map[string]any
	require.NoError(t, json.Unmarshal([]byte(config), &wantCfg))
	require.NoError(t, json.Unmarshal([]byte(state), &wantSt))
	wantCfg["accounts"].([]any)[0].(map[string]any)["label"] = "A2"
	wantSt["accounts"].(map[string]any)["a"].(map[string]any)["lastUsed"] = float64(99)
	assert.Equal(t, wantCfg, decodeMap(t, p.Config))
	assert.Equal(t, wantSt, decodeMap(t, p.State))

	raw, err := os.ReadFile(p.State)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(raw), "{\n  \""), "2-space indented")
	assert.True(t, strings.HasSuffix(string(raw), "}\n"), "trailing newline")
	assert.Contains(t, string(raw), `"scoped": []`, "an empty scoped list is meaningful and kept")
	assertNoLeftovers(t, filepath.Dir(p.Config), ConfigFileName, StateFileName)
}

func TestStore_onlyStateExists(t *testing.T) {
	s := tempStore(t, StoreOptions{})
	p := s.Paths()
	writeFile(t, p.State, `{"version":1,"main":{"quotaToken":"fp"},"accounts":{}}`)

	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	require.NotNil(t, snap.Config, "an empty config is synthesized")
	assert.Empty(t, snap.Accounts)
	assert.JSONEq(t, `{"type":"opencode","provider":"anthropic"}`, string(snap.Config.Main))
	assert.Equal(t, "fp", snap.Main.QuotaToken)
	assert.NoFileExists(t, p.Config, "Load writes nothing")

	_, err = s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
		cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: "x", Type: record.AccountAPI, BaseURL: "https://gw.example"})
		st.Accounts["x"] = &record.AccountState{APIKey: "k"}
		return nil
	})
	require.NoError(t, err)
	got := decodeMap(t, p.Config)
	assert.Equal(t, float64(1), got["version"])
	assert.Equal(t, map[string]any{"type": "opencode", "provider": "anthropic"}, got["main"])
	assert.Len(t, got["accounts"], 1)
}

func TestStore_neitherFileExists(t *testing.T) {
	s := tempStore(t, StoreOptions{})
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	assert.Nil(t, snap.Config)
	assert.Nil(t, snap.State)
	assert.Empty(t, snap.Accounts)
}

// Old configs carried tokens inline. The first config write moves them into
// the state file and never writes them back to config.
func TestStore_UpdateConfig_migratesLegacyCredentials(t *testing.T) {
	cases := []struct {
		name        string
		state       string
		wantRefresh string
		wantQuota   bool
	}{
		{"no state entry: config tokens move", `{"version":1,"accounts":{}}`, plantedToken, false},
		{"older state: config tokens win and stale quota goes",
			`{"version":1,"accounts":{"a":{"refresh":"rt-old","access":"at-old","lastRefreshedAt":100,"quota":{"source":"poll","checkedAt":100}}}}`,
			plantedToken, false},
		{"newer state: state tokens stay",
			`{"version":1,"accounts":{"a":{"refresh":"rt-new","access":"at-new","lastRefreshedAt":900,"quota":{"source":"poll","checkedAt":900}}}}`,
			"rt-new", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tempStore(t, StoreOptions{})
			p := s.Paths()
			writeFile(t, p.Config, `{"version":1,"accounts":[{"id":"a","type":"oauth","addedAt":50,"refresh":"`+plantedToken+`","access":"at-cfg","expires":777,"lastRefreshedAt":500,"lastUsed":400,"note":"kept"},
				{"id":"b","type":"api","baseURL":"https://gw.example","apiKey":"sk-ant-api-PLANTED"}]}`)
			writeFile(t, p.State, tc.state)

			snap, err := s.Load(context.Background())
			require.NoError(t, err)
			a, ok := snap.Account("a")
			require.True(t, ok)
			assert.Equal(t, tc.wantRefresh, a.State.Refresh.Reveal(), "Load applies the same rule in memory")

			_, err = s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error { return nil })
			require.NoError(t, err)
			cfgRaw, _ := os.ReadFile(p.Config)
			assert.NotContains(t, string(cfgRaw), "PLANTED")
			assert.NotContains(t, string(cfgRaw), "at-cfg")
			assert.Contains(t, string(cfgRaw), `"note": "kept"`)
			assert.Contains(t, string(cfgRaw), `"lastUsed": 400`, "non-credential keys stay")

			st := decodeMap(t, p.State)["accounts"].(map[string]any)
			sa := st["a"].(map[string]any)
			assert.Equal(t, tc.wantRefresh, sa["refresh"])
			_, hasQuota := sa["quota"]
			assert.Equal(t, tc.wantQuota, hasQuota)
			if tc.wantRefresh == plantedToken {
				assert.Equal(t, "at-cfg", sa["access"])
				assert.Equal(t, float64(777), sa["expires"])
			}
			assert.Equal(t, "sk-ant-api-PLANTED", st["b"].(map[string]any)["apiKey"])
		})
	}
}

func TestStore_prunesStateOfRemovedAccounts(t *testing.T) {
	cases := []struct {
		name   string
		config string // "" = no config file
		want   []string
	}{
		{"entries not in config go", `{"version":1,"accounts":[{"id":" a ","type":"oauth"}]}`, []string{"a"}},
		{"no config: nothing pruned", "", []string{"a", "gone"}},
		{"an entry without id: nothing pruned", `{"version":1,"accounts":[{"id":"a","type":"oauth"},{"type":"oauth"}]}`, []string{"a", "gone"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tempStore(t, StoreOptions{})
			p := s.Paths()
			if tc.config != "" {
				writeFile(t, p.Config, tc.config)
			}
			writeFile(t, p.State, `{"version":1,"accounts":{"a":{"refresh":"r"},"gone":{"refresh":"r2"}}}`)
			_, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
				st.Accounts["a"].LastUsed = 1
				return nil
			})
			require.NoError(t, err)
			var got []string
			for id := range decodeMap(t, p.State)["accounts"].(map[string]any) {
				got = append(got, id)
			}
			assert.ElementsMatch(t, tc.want, got)
		})
	}
}

func TestStore_UpdateState_unchangedWritesNothing(t *testing.T) {
	s := tempStore(t, StoreOptions{})
	p := s.Paths()
	_, err := s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
		cfg.Accounts = []record.AccountConfig{{ID: "a", Type: record.AccountOAuth}}
		st.Accounts["a"] = &record.AccountState{Refresh: "r"}
		return nil
	})
	require.NoError(t, err)
	old := time.Unix(1_000_000, 0)
	require.NoError(t, os.Chtimes(p.State, old, old))
	_, err = s.UpdateState(context.Background(), func(st *record.StateFile) error { return nil })
	require.NoError(t, err)
	fi, err := os.Stat(p.State)
	require.NoError(t, err)
	assert.Equal(t, old, fi.ModTime(), "not rewritten")

	boom := errors.New("boom")
	_, err = s.UpdateState(context.Background(), func(st *record.StateFile) error {
		st.Accounts["a"].LastUsed = 5
		return boom
	})
	require.ErrorIs(t, err, boom)
	fi, _ = os.Stat(p.State)
	assert.Equal(t, old, fi.ModTime(), "fn error: not written")
	assertNoLeftovers(t, filepath.Dir(p.State), ConfigFileName, StateFileName)
}

// Lock files sit beside the config, and a busy lock times out with
// upstream's wording, matching ErrLockTimeout.
func TestStore_lockTimeout(t *testing.T) {
	cases := []struct {
		name string
		lock string
		run  func(s *Store) error
		msg  string
	}{
		{"state lock", "state-write", func(s *Store) error {
			_, err := s.UpdateState(context.Background(), func(*record.StateFile) error { return nil })
			return err
		}, "Timed out waiting for the account state write lock"},
		{"config lock", "config-write", func(s *Store) error {
			_, err := s.UpdateConfig(context.Background(), func(*record.ConfigFile, *record.StateFile) error { return nil })
			return err
		}, "Timed out waiting for the account configuration write lock"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The wall clock jumps 13 s per reading, so the 12 s wait runs
			// out at the second poll while the planted lock (expiring in an
			// hour) stays live.
			var now atomic.Int64
			now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
			clock := func() time.Time { return time.UnixMilli(now.Add(13_000)) }
			s := tempStore(t, StoreOptions{WallClock: clock})
			lock := s.Paths().Config + "." + tc.lock + ".lock"
			writeFile(t, lock, `{"ownerId":"other","expiresAt":`+itoa(now.Load()+3_600_000)+"}\n")
			err := tc.run(s)
			require.ErrorIs(t, err, ErrLockTimeout)
			assert.Equal(t, tc.msg, err.Error())
			assert.FileExists(t, lock, "someone else's live lock is left alone")
		})
	}
}

// A writer that crashed holding the lock blocks others only until its TTL
// has passed: then the lock is evicted.
func TestStore_staleLockEvicted(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var offset atomic.Int64
	clock := func() time.Time { return base.Add(time.Duration(offset.Load())) }
	s := tempStore(t, StoreOptions{WallClock: clock})
	lock := s.Paths().Config + ".state-write.lock"
	writeFile(t, lock, `{"ownerId":"crashed","expiresAt":`+itoa(base.Add(filestore.WriteLockTTL).UnixMilli())+"}\n")

	offset.Store(int64(filestore.WriteLockTTL + time.Millisecond))
	_, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
		st.Extra = record.Extra{"ok": json.RawMessage(`1`)}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, float64(1), decodeMap(t, s.Paths().State)["ok"])
	assertNoLeftovers(t, filepath.Dir(lock), StateFileName)
}

func TestStore_acquireAt(t *testing.T) {
	s := tempStore(t, StoreOptions{})
	lock := filepath.Join(filepath.Dir(s.Paths().Config), "anthropic-auth-routing-state.json.write.lock")
	release, err := s.files.AcquireAt(context.Background(), lock, 10*time.Second, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, err)
	data, err := os.ReadFile(lock)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"ownerId":`)
	release()
	release() // safe twice
	assert.NoFileExists(t, lock)

	release, err = s.files.Acquire(context.Background(), "fallback-oauth-refresh-0123456789abcdef", time.Minute, time.Second)
	require.NoError(t, err)
	assert.FileExists(t, s.Paths().Config+".fallback-oauth-refresh-0123456789abcdef.lock")
	release()
}

func TestNewStore_paths(t *testing.T) {
	cases := []struct {
		name  string
		paths Paths
		ok    bool
	}{
		{"routing state defaults beside config", Paths{Config: "/d/anthropic-auth.json", State: "/d/s.json"}, true},
		{"config required", Paths{State: "/d/s.json"}, false},
		{"state required", Paths{Config: "/d/c.json"}, false},
		{"config and state must differ", Paths{Config: "/d/c.json", State: "/d/c.json"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewStore(StoreOptions{Paths: tc.paths})
			if !tc.ok {
				require.ErrorIs(t, err, ErrConfigInvalid)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "/d/anthropic-auth-routing-state.json", s.Paths().RoutingState)
		})
	}
}

// TestStore_readOnly: a read-only store (acctpool check) reads the files
// as the server does and changes nothing: a loose mode stays as found, and
// every write is refused with ErrReadOnly, the files byte for byte as
// they were.
func TestStore_readOnly(t *testing.T) {
	dir := t.TempDir()
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	cfg := `{"version":1,"accounts":[{"id":"fb","type":"oauth"}]}`
	st := `{"version":1,"accounts":{"fb":{"refresh":"rt-planted","access":"at-planted","expires":1}}}`
	require.NoError(t, os.WriteFile(paths.Config, []byte(cfg), 0o644))
	require.NoError(t, os.WriteFile(paths.State, []byte(st), 0o644))
	require.NoError(t, os.Chmod(paths.Config, 0o644))
	require.NoError(t, os.Chmod(paths.State, 0o644))

	s, err := NewStore(StoreOptions{Paths: paths, ReadOnly: true})
	require.NoError(t, err)
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.Accounts, 1)
	assert.Equal(t, "rt-planted", snap.Accounts[0].State.Refresh.Reveal())

	_, err = s.UpdateState(context.Background(), func(st *record.StateFile) error { st.Version = 1; return nil })
	assert.ErrorIs(t, err, ErrReadOnly)
	_, err = s.UpdateConfig(context.Background(), func(*record.ConfigFile, *record.StateFile) error { return nil })
	assert.ErrorIs(t, err, ErrReadOnly)

	for path, want := range map[string]string{paths.Config: cfg, paths.State: st} {
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, want, string(got), "%s is unchanged", path)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm(), "%s keeps the mode it was found with", path)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "no lock, temporary or routing file was created")
}
