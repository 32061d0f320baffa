package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func childStore(dir string) (*Store, error) {
	return NewStore(StoreOptions{Paths: Paths{
		Config: filepath.Join(dir, ConfigFileName),
		State:  filepath.Join(dir, StateFileName),
	}})
}

func envInt(k string) int {
	n, _ := strconv.Atoi(os.Getenv(k))
	return n
}

// hammerChild runs ACCTPOOL_GOROUTINES goroutines, each with its own store,
// that each add ACCTPOOL_ITERS accounts through UpdateConfig and then write
// per-account fields through UpdateState.
func hammerChild() error {
	dir, proc, iters, gs := os.Getenv("ACCTPOOL_DIR"), envInt("ACCTPOOL_PROC"), envInt("ACCTPOOL_ITERS"), envInt("ACCTPOOL_GOROUTINES")
	ctx := context.Background()
	errs := make(chan error, gs)
	for g := 0; g < gs; g++ {
		go func(g int) {
			s, err := childStore(dir)
			if err != nil {
				errs <- err
				return
			}
			for k := 0; k < iters; k++ {
				id := hammerID(proc, g, k)
				if _, err := s.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
					cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: id, Label: id, Type: record.AccountOAuth, AddedAt: int64(k + 1)})
					st.Accounts[id] = &record.AccountState{Refresh: secret.Secret("rt-" + id)}
					return nil
				}); err != nil {
					errs <- fmt.Errorf("add %s: %w", id, err)
					return
				}
				if _, err := s.UpdateState(ctx, func(st *record.StateFile) error {
					a := st.Accounts[id]
					if a == nil {
						return fmt.Errorf("state of %s lost", id)
					}
					a.Expires = int64(1000 + k)
					a.LastUsed = int64(k + 1)
					return nil
				}); err != nil {
					errs <- fmt.Errorf("update %s: %w", id, err)
					return
				}
			}
			errs <- nil
		}(g)
	}
	var all []error
	for g := 0; g < gs; g++ {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func hammerID(proc, g, k int) string { return fmt.Sprintf("p%d-g%d-%03d", proc, g, k) }

// watchJSON re-reads the files in a loop until stopped and fails the test
// if any read is not a complete JSON object. check, if set, sees every
// successful read.
func watchJSON(t *testing.T, check func(path string, data []byte), paths ...string) (stop func() int) {
	t.Helper()
	quit, done := make(chan struct{}), make(chan int)
	go func() {
		reads := 0
		for {
			select {
			case <-quit:
				done <- reads
				return
			default:
			}
			for _, p := range paths {
				data, err := os.ReadFile(p)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				reads++
				if err != nil || !json.Valid(data) {
					t.Errorf("%s is not valid JSON at some moment (%d bytes, err %v)", filepath.Base(p), len(data), err)
					continue
				}
				if check != nil {
					check(p, data)
				}
			}
		}
	}()
	return func() int {
		close(quit)
		return <-done
	}
}

func startChild(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := childCommand(role, env...)
	cmd.Stderr = &strings.Builder{}
	require.NoError(t, cmd.Start())
	return cmd
}

// TestStore_processesHammer: four OS processes, two stores each, add
// distinct accounts through UpdateConfig and write per-account fields
// through UpdateState at the same time. No account is lost, every write is
// visible, and a watcher never sees a file that is not valid JSON, nor the
// account list shrink.
func TestStore_processesHammer(t *testing.T) {
	const procs, goroutines = 4, 2
	iters := 15
	if testing.Short() {
		iters = 4
	}
	dir := t.TempDir()
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}

	var mu sync.Mutex
	maxSeen := map[string]int{}
	stop := watchJSON(t, func(p string, data []byte) {
		var probe struct {
			Accounts json.RawMessage `json:"accounts"`
		}
		if !assert.NoError(t, json.Unmarshal(data, &probe)) {
			return
		}
		var n int
		if p == paths.Config {
			var list []json.RawMessage
			_ = json.Unmarshal(probe.Accounts, &list)
			n = len(list)
		} else {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(probe.Accounts, &m)
			n = len(m)
		}
		mu.Lock()
		defer mu.Unlock()
		if n < maxSeen[p] {
			t.Errorf("%s went from %d to %d accounts", filepath.Base(p), maxSeen[p], n)
		}
		maxSeen[p] = n
	}, paths.Config, paths.State)

	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmds[i] = startChild(t, "store-hammer", "ACCTPOOL_DIR="+dir, "ACCTPOOL_PROC="+strconv.Itoa(i),
			"ACCTPOOL_ITERS="+strconv.Itoa(iters), "ACCTPOOL_GOROUTINES="+strconv.Itoa(goroutines))
	}
	for i, cmd := range cmds {
		assert.NoError(t, cmd.Wait(), "child %d: %s", i, cmd.Stderr)
	}
	reads := stop()
	t.Logf("watcher made %d reads", reads)
	assert.Positive(t, reads)

	s, err := NewStore(StoreOptions{Paths: paths})
	require.NoError(t, err)
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.Accounts, procs*goroutines*iters, "no account lost")
	for p := 0; p < procs; p++ {
		for g := 0; g < goroutines; g++ {
			for k := 0; k < iters; k++ {
				id := hammerID(p, g, k)
				a, ok := snap.Account(id)
				if !assert.True(t, ok, "account %s", id) {
					continue
				}
				assert.Equal(t, secret.Secret("rt-"+id), a.State.Refresh, id)
				assert.Equal(t, int64(1000+k), a.State.Expires, id)
				assert.Equal(t, int64(k+1), a.State.LastUsed, id)
			}
		}
	}
	assertNoLeftovers(t, dir, ConfigFileName, StateFileName)
}

// killWriteChild rewrites a large state file in a loop until killed. Each
// version n carries a counter and padding derived from n, so that a reader
// can tell a whole version from a torn one.
func killWriteChild() error {
	s, err := childStore(os.Getenv("ACCTPOOL_DIR"))
	if err != nil {
		return err
	}
	for n := 1; ; n++ {
		if _, err := s.UpdateState(context.Background(), func(st *record.StateFile) error {
			st.Extra = killVersion(n)
			return nil
		}); err != nil {
			return err
		}
	}
}

func killVersion(n int) record.Extra {
	return record.Extra{
		"counter": json.RawMessage(strconv.Itoa(n)),
		"pad":     json.RawMessage(`"` + strings.Repeat(fmt.Sprintf("%08d", n), 32<<10) + `"`),
	}
}

// checkKillVersion parses a state file written by killWriteChild and
// returns its counter, failing on a torn or mixed file.
func checkKillVersion(t *testing.T, data []byte) int {
	t.Helper()
	var st record.StateFile
	require.NoError(t, json.Unmarshal(data, &st), "state file parses (%d bytes)", len(data))
	var n int
	require.NoError(t, json.Unmarshal(st.Extra["counter"], &n))
	want := killVersion(n)
	require.Equal(t, string(want["pad"]), string(st.Extra["pad"]), "padding belongs to version %d", n)
	return n
}

// TestStore_killDuringWrites: a child rewriting the state file in a loop is
// SIGKILLed; the file then holds a whole version, never a truncated one,
// and a lock the child died holding stops the next writer only until its
// TTL has passed (the writer's clock is moved past it, not slept).
func TestStore_killDuringWrites(t *testing.T) {
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	dir := t.TempDir()
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	stopWatch := watchJSON(t, nil, paths.State)
	defer stopWatch()

	last := 0
	for r := 0; r < rounds; r++ {
		cmd := startChild(t, "killwrite", "ACCTPOOL_DIR="+dir)
		// Let the child get a few versions past the previous round's last.
		require.Eventually(t, func() bool {
			data, err := os.ReadFile(paths.State)
			if err != nil {
				return false
			}
			var probe struct {
				Counter int `json:"counter"`
			}
			return json.Unmarshal(data, &probe) == nil && probe.Counter >= 2+r
		}, 30*time.Second, time.Millisecond, "child writes: %s", cmd.Stderr)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()

		data, err := os.ReadFile(paths.State)
		require.NoError(t, err)
		n := checkKillVersion(t, data)
		t.Logf("round %d: killed at version %d", r, n)
		_, lockErr := os.Stat(paths.Config + ".state-write.lock")
		t.Logf("round %d: lock left behind: %v", r, lockErr == nil)

		// The next writer, with a wall clock past the TTL, takes over at
		// once instead of waiting for the dead child.
		s, err := NewStore(StoreOptions{Paths: paths, WallClock: func() time.Time { return time.Now().Add(filestore.WriteLockTTL + time.Second) }})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a deadlock guard
		_, err = s.UpdateState(ctx, func(st *record.StateFile) error {
			st.Extra = killVersion(0)
			return nil
		})
		cancel()
		require.NoError(t, err)
		data, err = os.ReadFile(paths.State)
		require.NoError(t, err)
		assert.Equal(t, 0, checkKillVersion(t, data))
		assert.NoFileExists(t, paths.Config+".state-write.lock")
		last = n
	}
	assert.Positive(t, last)
	// A killed writer may leave its temporary file behind, never a lock or
	// an eviction marker.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		name := e.Name()
		if name == StateFileName || strings.HasPrefix(name, StateFileName+".") && strings.HasSuffix(name, ".tmp") {
			continue
		}
		t.Errorf("unexpected file %s", name)
	}
}

// refreshAccountChild forces one refresh of account "fb" through the
// public RefreshAccount, meeting the other children at the rendezvous once
// it has read the account's starting state, and prints the fingerprint of
// the access token it ended up with.
func refreshAccountChild() error {
	base := os.Getenv("ACCTPOOL_URL")
	s, err := childStore(os.Getenv("ACCTPOOL_DIR"))
	if err != nil {
		return err
	}
	clock := &rendezvousClock{url: base + "/ready"}
	e, err := New(Options{Store: s, Clock: clock, Endpoints: Endpoints{Token: base + "/token"}})
	if err != nil {
		return err
	}
	clock.arm()
	_, err = e.RefreshAccount(context.Background(), "fb")
	if clock.err != nil {
		return clock.err
	}
	if err != nil {
		return err
	}
	snap, err := s.Load(context.Background())
	if err != nil {
		return err
	}
	a, ok := snap.Account("fb")
	if !ok {
		return errors.New("account fb lost")
	}
	fmt.Println("access:", a.State.Access.Fingerprint())
	return nil
}

// TestEngine_RefreshAccount_processesRace: four OS processes force a
// refresh of the same account at once through the public RefreshAccount.
// Exactly one token call is made and every process ends with the rotated
// token. The processes meet at a rendezvous once each has read the
// account's starting state, so all of them are racing, not running one
// after the other (a forced refresh that starts after another finished
// would rightly refresh again). The fake rejects a reused refresh token
// with invalid_grant, as Anthropic does after rotation.
func TestEngine_RefreshAccount_processesRace(t *testing.T) {
	const procs = 4
	var mu sync.Mutex
	calls := 0
	used := map[string]bool{}
	rv := newRendezvous(procs)
	mux := http.NewServeMux()
	mux.Handle("/ready", rv)
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if used[string(body)] {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		used[string(body)] = true
		_, _ = fmt.Fprintf(w, `{"access_token":"sk-ant-oat01-ROTATED%d","refresh_token":"sk-ant-ort01-ROTATED%d","expires_in":28800}`, calls, calls)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	dir := t.TempDir()
	cfg, st := oneFallback(time.Now().Add(8 * time.Hour)) // fresh: only force refreshes it
	writeFile(t, filepath.Join(dir, ConfigFileName), cfg)
	writeFile(t, filepath.Join(dir, StateFileName), st)

	cmds := make([]*exec.Cmd, procs)
	outs := make([]*strings.Builder, procs)
	for i := range cmds {
		cmds[i] = childCommand("refreshaccount", "ACCTPOOL_DIR="+dir, "ACCTPOOL_URL="+srv.URL)
		outs[i] = &strings.Builder{}
		cmds[i].Stdout, cmds[i].Stderr = outs[i], outs[i]
		require.NoError(t, cmds[i].Start())
	}
	for i, cmd := range cmds {
		assert.NoError(t, cmd.Wait(), "child %d: %s", i, outs[i])
	}
	assert.Equal(t, procs, rv.arrivals(), "every process met the others after reading its starting state")
	mu.Lock()
	assert.Equal(t, 1, calls, "exactly one token call across processes")
	mu.Unlock()
	want := "access: " + secret.Secret("sk-ant-oat01-ROTATED1").Fingerprint()
	for i, out := range outs {
		assert.Equal(t, want, strings.TrimSpace(out.String()), "process %d adopted the rotated token", i)
	}
}
