//go:build linux

package core

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/internal/procid"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pidDoer tags every request with the client's pid, so the fake endpoint
// knows which process got which answer.
type pidDoer struct{ c *http.Client }

func (d pidDoer) Do(r *http.Request) (*http.Response, error) {
	r.Header.Set("X-Test-Pid", strconv.Itoa(os.Getpid()))
	return d.c.Do(r)
}

func childEngine(dir, tokenURL string, logTo io.Writer) (*Engine, error) {
	log := slog.New(slog.NewJSONHandler(logTo, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := NewStore(StoreOptions{Logger: log, Paths: Paths{
		Config: filepath.Join(dir, ConfigFileName),
		State:  filepath.Join(dir, StateFileName),
	}})
	if err != nil {
		return nil, err
	}
	return New(Options{Store: s, Endpoints: Endpoints{Token: tokenURL}, HTTP: pidDoer{&http.Client{Timeout: 30 * time.Second}}, Logger: log})
}

// durableRefreshChild forces one refresh of account fb (the parent kills
// it while the token call is held).
func durableRefreshChild() error {
	e, err := childEngine(os.Getenv("ACCTPOOL_DIR"), os.Getenv("ACCTPOOL_URL"), os.Stderr)
	if err != nil {
		return err
	}
	_, err = e.RefreshAccount(context.Background(), "fb")
	return err
}

// reserveChild creates the temporary file of a state write, says so, and
// waits to be killed, as a writer killed between create and rename.
func reserveChild() error {
	r, err := atomicfile.Reserve(filepath.Join(os.Getenv("ACCTPOOL_DIR"), StateFileName), 4096)
	if err != nil {
		return err
	}
	fmt.Println("reserved", filepath.Base(r.Target()))
	_, _ = io.Copy(io.Discard, os.Stdin) // until killed
	return nil
}

func startDurableChild(t *testing.T, role string, env ...string) (*exec.Cmd, io.WriteCloser, *bufio.Reader, *lockedBuffer) {
	t.Helper()
	cmd := childCommand(role, env...)
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, stdin, bufio.NewReader(out), stderr
}

// TestEngine_killedLockHolder: a process killed with SIGKILL while it holds
// an account's refresh lock (its token call in flight) does not block the
// account: a survivor refreshes it at once, because the lock names a
// provably dead owner. The time from the kill to the survivor's success is
// logged, not asserted.
func TestEngine_killedLockHolder(t *testing.T) {
	env := newDurableEnv(t, true, nil)
	cmd, _, _, stderr := startDurableChild(t, "durable-refresh", "ACCTPOOL_DIR="+env.dir, "ACCTPOOL_URL="+env.fake.srv.URL)
	env.waitArrived(t)
	lock := env.paths.Config + "." + fallbackRefreshLock("fb") + ".lock"
	require.FileExists(t, lock, "the child holds the account's refresh lock")
	env.fake.hold.Store(false)
	killed := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := env.engine.RefreshAccount(ctx, "fb")
	took := time.Since(killed)
	require.NoError(t, err, "the survivor refreshes; child log: %s", stderr)
	t.Logf("kill -9 of the lock holder to the survivor's refresh: %s", took.Round(time.Millisecond))
	assert.Equal(t, env.fake.latestOf("fb"), env.storedRefresh(t))
	_, rejected := env.fake.counts()
	assert.Zero(t, rejected)
	drain(t, env.engine)
}

// TestStore_removesDeadWritersTemps: the temporary file of a writer killed
// mid-save (a full copy of the tokens) is removed when a store opens;
// a live writer's, and files that are not ours, stay.
func TestStore_removesDeadWritersTemps(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ConfigFileName), `{"version":1,"accounts":[]}`)
	writeFile(t, filepath.Join(dir, StateFileName), `{"version":1,"accounts":{}}`)
	cmd, _, out, stderr := startDurableChild(t, "reserve", "ACCTPOOL_DIR="+dir)
	line, err := out.ReadString('\n')
	require.NoError(t, err, "child: %s", stderr)
	require.True(t, strings.HasPrefix(line, "reserved "), line)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var leftover string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			leftover = e.Name()
		}
	}
	require.NotEmpty(t, leftover, "the child's temporary file exists")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	live, err := atomicfile.Reserve(filepath.Join(dir, StateFileName), 0) // ours, alive
	require.NoError(t, err)
	defer live.Abort()
	foreign := StateFileName + ".0f8e2b9c-1111-4222-8333-444455556666.tmp" // the plugin's
	writeFile(t, filepath.Join(dir, foreign), "{}")

	_, err = NewStore(StoreOptions{Paths: Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}})
	require.NoError(t, err)
	assert.NoFileExists(t, filepath.Join(dir, leftover), "the dead writer's temporary file is gone")
	assert.FileExists(t, filepath.Join(dir, foreign))
	var temps int
	entries, _ = os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			temps++
		}
	}
	assert.Equal(t, 2, temps, "the live writer's and the plugin's stay")
}

// rotationHammerChild force-refreshes random accounts in a loop until its
// stdin closes, then drains and exits.
func rotationHammerChild() error {
	e, err := childEngine(os.Getenv("ACCTPOOL_DIR"), os.Getenv("ACCTPOOL_URL"), os.Stderr)
	if err != nil {
		return err
	}
	ids := strings.Split(os.Getenv("ACCTPOOL_IDS"), ",")
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	for {
		select {
		case <-stop:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return e.Drain(ctx)
		default:
		}
		id := ids[rand.IntN(len(ids))]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := e.RefreshAccount(ctx, id)
		cancel()
		if err != nil && !errors.Is(err, ErrInProgress) && !isCanceled(err) {
			fmt.Fprintln(os.Stderr, "refresh", id, "error:", err)
		}
	}
}

// TestEngine_rotationHammer: six processes force-refresh six accounts
// against an endpoint that rejects a reused refresh token with
// invalid_grant, while the test kills a random one with SIGKILL at random
// moments and starts a replacement. In the end every account's stored
// refresh token is the last one the endpoint issued, except for an account
// whose last answer went to a process killed before it could save it (the
// unavoidable window between the answer and the rename, which the children
// measure); and invalid_grant is only ever answered for such a lost
// account. ACCTPOOL_HAMMER_SECONDS sets the length (default 3 s).
func TestEngine_rotationHammer(t *testing.T) {
	const procs = 6
	seconds := 3
	if s, err := strconv.Atoi(os.Getenv("ACCTPOOL_HAMMER_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	dir := t.TempDir()
	fake := newRotatingEndpoint(t, false)
	ids := []string{"a1", "a2", "a3", "a4", "a5", "a6"}
	cfg := record.ConfigFile{Version: 1}
	st := record.StateFile{Version: 1, Accounts: map[string]*record.AccountState{}}
	for _, id := range ids {
		cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: id, Label: id, Type: record.AccountOAuth, AddedAt: 1})
		rt := "sk-ant-ort01-" + id + "-R0"
		st.Accounts[id] = &record.AccountState{Access: secret.Secret("sk-ant-oat01-" + id), Refresh: secret.Secret(rt), Expires: time.Now().Add(8 * time.Hour).UnixMilli()}
		fake.plant(id, rt)
	}
	for path, v := range map[string]any{filepath.Join(dir, ConfigFileName): cfg, filepath.Join(dir, StateFileName): st} {
		data, err := filestore.Encode(v)
		require.NoError(t, err)
		writeFile(t, path, string(data))
	}

	type child struct {
		cmd    *exec.Cmd
		stdin  io.WriteCloser
		stderr *lockedBuffer
	}
	start := func() *child {
		cmd, stdin, _, stderr := startDurableChild(t, "rotation-hammer", "ACCTPOOL_DIR="+dir, "ACCTPOOL_URL="+fake.srv.URL, "ACCTPOOL_IDS="+strings.Join(ids, ","))
		return &child{cmd, stdin, stderr}
	}
	var all []*child
	running := make([]*child, procs)
	for i := range running {
		running[i] = start()
		all = append(all, running[i])
	}
	killedAt := map[string]time.Time{}
	kills := 0
	const minKills = 25
	deadline := time.Now().Add(time.Duration(seconds) * time.Second)
	// The ticker paces the kills; nothing waits on it for a condition.
	tick := time.NewTicker(time.Duration(seconds) * time.Second / (minKills + 5))
	// Kills go on until some rotation was saved as well, however slow the
	// machine (guarded): a run that only ever killed proves nothing.
	rotated := func() bool {
		for _, c := range all {
			if strings.Contains(c.stderr.String(), "refreshed fallback token") {
				return true
			}
		}
		return false
	}
	guard := time.Now().Add(5 * time.Minute)
	for kills < minKills || time.Now().Before(deadline) || (!rotated() && time.Now().Before(guard)) {
		<-tick.C
		i := rand.IntN(procs)
		c := running[i]
		killedAt[strconv.Itoa(c.cmd.Process.Pid)] = time.Now()
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGKILL))
		_ = c.cmd.Wait()
		kills++
		running[i] = start()
		all = append(all, running[i])
	}
	tick.Stop()
	for _, c := range running {
		require.NoError(t, c.stdin.Close())
	}
	for _, c := range running {
		assert.NoError(t, c.cmd.Wait(), "child: %s", c.stderr)
	}

	var windows, saves []int64
	restored := 0
	for _, c := range all {
		for _, line := range strings.Split(c.stderr.String(), "\n") {
			var rec struct {
				Msg     string `json:"msg"`
				Journal int64  `json:"answerToJournalUs"`
				Save    int64  `json:"answerToSaveUs"`
			}
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch rec.Msg {
			case "refreshed fallback token":
				windows = append(windows, rec.Journal)
				saves = append(saves, rec.Save)
			case "restored rotated tokens that a killed process had not saved":
				restored++
			}
		}
	}
	s, err := childStore(dir)
	require.NoError(t, err)
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	lost := 0
	fake.mu.Lock()
	defer fake.mu.Unlock()
	// An account was stranded by a kill when one of its answers went to a
	// process that was killed: until a survivor salvages the journal, the
	// disk holds the consumed token, and posting it earns invalid_grant.
	stranded := map[string]bool{}
	for token, pid := range fake.answeredTo {
		if _, ok := killedAt[pid]; ok {
			stranded[fake.issued[token]] = true
		}
	}
	for _, id := range ids {
		a, ok := snap.Account(id)
		require.True(t, ok, id)
		if !stranded[id] {
			assert.Zero(t, fake.rejectedOf[id], "%s: invalid_grant from a race (no kill stranded it)", id)
		}
		if a.State.Refresh.Reveal() == fake.latest[id] {
			continue
		}
		lost++
		who := fake.answeredTo[fake.latest[id]]
		at, ok := killedAt[who]
		if assert.True(t, ok, "%s lost, but its last answer went to pid %s, which was not killed", id, who) {
			t.Logf("%s lost: pid %s was killed %s after the endpoint's answer", id, who, at.Sub(fake.answeredAt[fake.latest[id]]).Round(time.Microsecond))
		}
	}
	pct := func(v []int64, p float64) time.Duration {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return time.Duration(v[int(p*float64(len(v)-1))]) * time.Microsecond
	}
	t.Logf("%d processes, %d s, %d kills, %d token calls (%d invalid_grant after a kill), %d rotations saved, %d restored from a killed process's journal; accounts lost: %d of %d",
		procs, seconds, kills, fake.calls, fake.rejected, len(windows), restored, lost, len(ids))
	t.Logf("answer-to-journal-fsync window: p50 %s, p99 %s, max %s; answer-to-rename: p50 %s, p99 %s, max %s",
		pct(windows, 0.5), pct(windows, 0.99), pct(windows, 1), pct(saves, 0.5), pct(saves, 0.99), pct(saves, 1))
	assert.GreaterOrEqual(t, kills, minKills)
	assert.NotEmpty(t, windows, "rotations happened")
}

// TestEngine_busyAccountLockNamesHolder: when a live process holds the
// account's refresh lock for the whole wait, the refresh fails with
// in_progress naming that process and when its claim ends.
func TestEngine_busyAccountLockNamesHolder(t *testing.T) {
	// The store's wall clock jumps 11 s per reading, so the 10 s wait runs
	// out at once while the planted lock (far in the future) stays live.
	var offset atomic.Int64
	wall := func() time.Time { return time.Now().Add(time.Duration(offset.Add(int64(11 * time.Second)))) }
	env := newDurableEnv(t, false, wall)
	holder := exec.Command("sleep", "600")
	require.NoError(t, holder.Start())
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	id := procid.Self()
	id.PID = holder.Process.Pid
	id.Start = "" // unprovable: only expiry can free it
	until := time.Now().Add(1000 * time.Hour)
	data, err := json.Marshal(map[string]any{"ownerId": "other", "expiresAt": until.UnixMilli(), "pid": id.PID, "host": id.Host})
	require.NoError(t, err)
	writeFile(t, env.paths.Config+"."+fallbackRefreshLock("fb")+".lock", string(data)+"\n")

	_, err = env.engine.RefreshAccount(context.Background(), "fb")
	require.ErrorIs(t, err, ErrInProgress)
	assert.Contains(t, err.Error(), "Fallback OAuth refresh is already in progress for fb")
	assert.Contains(t, err.Error(), "held by pid "+strconv.Itoa(id.PID)+" on host "+id.Host)
	assert.Contains(t, err.Error(), "until "+until.UTC().Format(time.RFC3339))
	calls, _ := env.fake.counts()
	assert.Zero(t, calls)
}
