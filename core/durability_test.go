//go:build unix

package core

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/internal/lockfile"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// durableEnv is an engine over real files in dir whose token endpoint is a
// rotatingEndpoint, with one OAuth fallback "fb" whose token is fresh.
type durableEnv struct {
	dir    string
	paths  Paths
	fake   *rotatingEndpoint
	store  *Store
	engine *Engine
	logs   *lockedBuffer
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func newDurableEnv(t *testing.T, hold bool, wall func() time.Time) *durableEnv {
	t.Helper()
	dir := t.TempDir()
	env := &durableEnv{dir: dir, fake: newRotatingEndpoint(t, hold), logs: newLockedBuffer()}
	env.paths = Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	cfg, st := oneFallback(time.Now().Add(8 * time.Hour))
	writeFile(t, env.paths.Config, cfg)
	writeFile(t, env.paths.State, st)
	env.fake.plant("fb", "sk-ant-ort01-REFRESHPLANT")
	env.open(t, wall)
	return env
}

func (env *durableEnv) open(t *testing.T, wall func() time.Time) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var err error
	env.store, err = NewStore(StoreOptions{Paths: env.paths, Logger: log, WallClock: wall})
	require.NoError(t, err)
	env.engine, err = New(Options{Store: env.store, Endpoints: Endpoints{Token: env.fake.srv.URL}, Logger: log})
	require.NoError(t, err)
}

// storedRefresh is the refresh token of account fb in the state file.
func (env *durableEnv) storedRefresh(t *testing.T) string {
	t.Helper()
	st, _, err := filestore.ReadStateFile(env.paths.State)
	require.NoError(t, err)
	require.NotNil(t, st)
	a := st.Accounts["fb"]
	require.NotNil(t, a, "fb in the state file")
	return a.Refresh.Reveal()
}

func (env *durableEnv) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-env.fake.arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the token endpoint was never called")
	}
}

func drain(t *testing.T, e *Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx))
}

// TestEngine_rotationOutlivesCancelledCaller: the caller gives up after the
// endpoint took the old refresh token; it gets its context's error, and the
// rotation still lands on disk. In the second case the state lock is busy
// (another process holds it) when the answer arrives.
func TestEngine_rotationOutlivesCancelledCaller(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "state lock busy"}[busy], func(t *testing.T) {
			env := newDurableEnv(t, true, nil)
			stateLock := env.paths.Config + ".state-write.lock"
			if busy {
				writeFile(t, stateLock, `{"ownerId":"other","expiresAt":`+itoa(time.Now().Add(time.Hour).UnixMilli())+"}\n")
			}
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { _, err := env.engine.RefreshAccount(ctx, "fb"); errc <- err }()
			env.waitArrived(t)
			cancel()
			require.ErrorIs(t, <-errc, context.Canceled, "the caller hears it was cancelled")
			env.fake.answer <- struct{}{}
			if busy {
				// The answer is out; the save waits for the lock. Then the
				// other process lets go.
				require.Eventually(t, func() bool { calls, _ := env.fake.counts(); return calls == 1 }, 20*time.Second, time.Millisecond)
				require.NoError(t, os.Remove(stateLock))
			}
			drain(t, env.engine)
			assert.Equal(t, env.fake.latestOf("fb"), env.storedRefresh(t), "the rotated pair is on disk")
			assert.False(t, env.fake.isConsumed(env.storedRefresh(t)))
		})
	}
}

// TestEngine_failedSaveKeepsRotatedPair: the save after a rotation fails
// (the state lock stays busy past the save deadline). The new pair stays
// the account's credential in memory, views show persistPending with the
// error, the next refresh posts the new token (never the consumed one),
// and the save lands once the lock is free.
func TestEngine_failedSaveKeepsRotatedPair(t *testing.T) {
	// The store's wall clock jumps 13 s per reading, so that a busy write
	// lock times out at once instead of after 12 real seconds.
	var jump atomic.Bool
	var offset atomic.Int64
	wall := func() time.Time {
		if jump.Load() {
			return time.Now().Add(time.Duration(offset.Add(int64(13 * time.Second))))
		}
		return time.Now().Add(time.Duration(offset.Load()))
	}
	env := newDurableEnv(t, false, wall)
	stateLock := env.paths.Config + ".state-write.lock"
	writeFile(t, stateLock, `{"ownerId":"other","expiresAt":`+itoa(time.Now().Add(1000*time.Hour).UnixMilli())+"}\n")
	jump.Store(true)
	_, err := env.engine.RefreshAccount(context.Background(), "fb")
	jump.Store(false)
	require.NoError(t, err, "the rotation succeeded; only its save is pending")
	first := env.fake.latestOf("fb")
	assert.Equal(t, "sk-ant-ort01-REFRESHPLANT", env.storedRefresh(t), "disk still has the consumed token")

	views, err := env.engine.ListAccounts(context.Background())
	require.NoError(t, err)
	var fb AccountView
	for _, v := range views {
		if v.ID == "fb" {
			fb = v
		}
	}
	assert.True(t, fb.PersistPending)
	assert.Contains(t, fb.PersistError, "Timed out waiting for the account state write lock")
	assert.NotContains(t, fb.PersistError, "sk-ant", "no secrets in the view")
	assert.Contains(t, env.logs.String(), "level=WARN msg=\"rotated tokens could not be saved")

	snap, err := env.store.Load(context.Background())
	require.NoError(t, err)
	a, _ := snap.Account("fb")
	assert.Equal(t, first, a.State.Refresh.Reveal(), "served from memory")

	// The lock frees up: the retry loop saves the pair.
	require.NoError(t, os.Remove(stateLock))
	require.Eventually(t, func() bool { p, _ := env.store.pendingOf("fb"); return !p }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, first, env.storedRefresh(t))
	_, rejected := env.fake.counts()
	assert.Zero(t, rejected, "the consumed token was never posted again")

	// And the next refresh rotates from the saved pair.
	_, err = env.engine.RefreshAccount(context.Background(), "fb")
	require.NoError(t, err)
	assert.Equal(t, env.fake.latestOf("fb"), env.storedRefresh(t))
	drain(t, env.engine)
}

// TestEngine_pendingPairUsedBeforeSave: while the save is pending, a second
// refresh in the same process posts the rotated token, never the consumed
// one.
func TestEngine_pendingPairUsedBeforeSave(t *testing.T) {
	env := newDurableEnv(t, false, nil)
	_, err := env.engine.RefreshAccount(context.Background(), "fb")
	require.NoError(t, err)
	// Plant the state of a failed save by hand: the disk goes back to the
	// consumed token and the pair is pending.
	saved := env.storedRefresh(t)
	snap, err := env.store.Load(context.Background())
	require.NoError(t, err)
	a, _ := snap.Account("fb")
	env.store.setPending("fb", "sk-ant-ort01-REFRESHPLANT", a.State, nil, errors.New("injected"))
	_, st := oneFallback(time.Now().Add(8 * time.Hour))
	writeFile(t, env.paths.State, st)
	_, err = env.engine.RefreshAccount(context.Background(), "fb")
	require.NoError(t, err)
	_, rejected := env.fake.counts()
	assert.Zero(t, rejected)
	assert.True(t, env.fake.isConsumed(saved), "the second refresh used the pending pair")
	assert.Equal(t, env.fake.latestOf("fb"), env.storedRefresh(t))
	p, _ := env.store.pendingOf("fb")
	assert.False(t, p, "saved along with the second rotation")
	drain(t, env.engine)
}

// TestStore_lostLockReapplies: another process evicts our write lock while
// the change is being made (the upstream plugin's eviction path can remove
// a lock taken after its liveness check); the change is re-applied under a
// fresh lock to what is on disk then, not dropped.
func TestStore_lostLockReapplies(t *testing.T) {
	cases := []struct {
		name   string
		steals int
		ok     bool
	}{
		{"lost once", 1, true},
		{"lost every time", filestore.LostLockAttempts, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := tempStore(t, StoreOptions{})
			writeFile(t, s.Paths().Config, `{"version":1,"accounts":[{"id":"a","type":"oauth","label":"a"}]}`)
			writeFile(t, s.Paths().State, `{"version":1,"accounts":{"a":{"refresh":"rt-1","lastUsed":1}}}`)
			lock := s.Paths().Config + ".config-write.lock"
			runs := 0
			_, err := s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
				runs++
				if runs <= c.steals {
					// Evicted and retaken by someone who writes meanwhile.
					require.NoError(t, os.Remove(lock))
					writeFile(t, lock, `{"ownerId":"thief","expiresAt":1}`+"\n")
				}
				cfg.Accounts[0].Label = "renamed"
				return nil
			})
			if !c.ok {
				require.ErrorIs(t, err, lockfile.ErrLost)
				assert.Contains(t, err.Error(), s.Paths().Config, "names the file")
				assert.Equal(t, filestore.LostLockAttempts, runs)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, 2, runs, "re-applied once")
			snap, err := s.Load(context.Background())
			require.NoError(t, err)
			a, _ := snap.Account("a")
			assert.Equal(t, "renamed", a.Label)
			assert.NoFileExists(t, lock)
		})
	}
}

// TestStore_writesThroughSymlink: a symlinked state file stays a symlink;
// its target gets the new content and no temporary file is left anywhere.
func TestStore_writesThroughSymlink(t *testing.T) {
	root := t.TempDir()
	real := filepath.Join(root, "real")
	dir := filepath.Join(root, "cfg")
	require.NoError(t, os.Mkdir(real, 0o700))
	require.NoError(t, os.Mkdir(dir, 0o700))
	target := filepath.Join(real, "state.json")
	writeFile(t, target, `{"version":1,"accounts":{"a":{"refresh":"rt-1"}}}`)
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	require.NoError(t, os.Symlink("../real/state.json", paths.State))
	writeFile(t, paths.Config, `{"version":1,"accounts":[{"id":"a","type":"oauth"}]}`)
	s, err := NewStore(StoreOptions{Paths: paths})
	require.NoError(t, err)
	_, err = s.UpdateState(context.Background(), func(st *record.StateFile) error {
		st.Accounts["a"].Refresh = "rt-2"
		return nil
	})
	require.NoError(t, err)
	fi, err := os.Lstat(paths.State)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeSymlink, "still a symlink")
	st, _, err := filestore.ReadStateFile(target)
	require.NoError(t, err)
	assert.Equal(t, secret.Secret("rt-2"), st.Accounts["a"].Refresh, "the target has the new token")
	assertNames(t, real, "state.json")
	assertNames(t, dir, ConfigFileName, StateFileName)
}

// assertNames checks that dir holds exactly names (no temporary files).
func assertNames(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.ElementsMatch(t, names, got)
}

// TestStore_tightensLooseMode: a token file readable by others is set back
// to 0600 on first read, with one warning naming the path.
func TestStore_tightensLooseMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o666, 0o640} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
			writeFile(t, paths.Config, `{"version":1,"accounts":[]}`)
			writeFile(t, paths.State, `{"version":1,"accounts":{}}`)
			require.NoError(t, os.Chmod(paths.State, mode))
			logs := newLockedBuffer()
			s, err := NewStore(StoreOptions{Paths: paths, Logger: slog.New(slog.NewTextHandler(logs, nil))})
			require.NoError(t, err)
			for i := 0; i < 3; i++ {
				_, err = s.Load(context.Background())
				require.NoError(t, err)
				require.NoError(t, os.Chmod(paths.State, mode)) // loosened again
			}
			_, err = s.Load(context.Background())
			require.NoError(t, err)
			fi, err := os.Stat(paths.State)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			assert.Equal(t, 1, strings.Count(logs.String(), "readable by group or others"), "warned once")
			assert.Contains(t, logs.String(), paths.State)
		})
	}
}

// TestStore_createsMissingConfigDir: the first write into a config
// directory that does not exist creates it, mode 0700.
func TestStore_createsMissingConfigDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "opencode")
	s, err := NewStore(StoreOptions{Paths: Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}})
	require.NoError(t, err)
	e, err := New(Options{Store: s})
	require.NoError(t, err)
	_, err = e.AddAccount(context.Background(), AccountSpec{Label: "k", Type: record.AccountAPI, APIKey: "sk-test", BaseURL: "https://example.test"})
	require.NoError(t, err)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	assert.FileExists(t, filepath.Join(dir, ConfigFileName))
}

// TestStore_keepsOwner: a save by root keeps the state file's owner and
// group (needs root to create a file owned by someone else).
func TestStore_keepsOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to plant a file owned by another user")
	}
	s := tempStore(t, StoreOptions{})
	writeFile(t, s.Paths().Config, `{"version":1,"accounts":[{"id":"a","type":"oauth"}]}`)
	writeFile(t, s.Paths().State, `{"version":1,"accounts":{"a":{"refresh":"rt-1"}}}`)
	require.NoError(t, os.Chown(s.Paths().State, 4242, 4343))
	_, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
		st.Accounts["a"].Refresh = "rt-2"
		return nil
	})
	require.NoError(t, err)
	fi, err := os.Stat(s.Paths().State)
	require.NoError(t, err)
	sys := fi.Sys().(*syscall.Stat_t)
	assert.Equal(t, uint32(4242), sys.Uid)
	assert.Equal(t, uint32(4343), sys.Gid)
}
