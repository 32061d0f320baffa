package pgstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/pgtest"
)

// tokenServer is a fake token endpoint: each refresh token works once; a
// reused one is answered 400 invalid_grant. It remembers who consumed
// each token, so a reuse can be told apart: a race (the first consumer is
// alive, so two live holders used one token) or the crash window (the
// first consumer was killed after the endpoint answered and before it
// saved).
type tokenServer struct {
	mu         sync.Mutex
	valid      map[string]string // account → the refresh token that works
	consumedBy map[string]int    // refresh token → pid that consumed it
	issued     int
	calls      int
	rotations  map[string]int // account → successful rotations
	reuses     []reuse
	// killNext, when set, makes the next call with a valid token kill the
	// caller before the token is consumed (the holder dies mid-call).
	killNext func(pid int) bool
	killed   map[int]bool
	// afterKill is the account and time of the last mid-call kill, and
	// recovered when a survivor's rotation of it followed.
	afterKill []killRecovery
}

type reuse struct {
	account, token string
	consumer       int
}

type killRecovery struct {
	account   string
	at        time.Time
	recovered time.Duration // 0: not yet
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Account, Refresh string
		Pid              int
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad body", 400)
		return
	}
	ts.mu.Lock()
	ts.calls++
	if ts.killNext != nil && ts.valid[body.Account] == body.Refresh && ts.killNext(body.Pid) {
		ts.killNext = nil
		ts.killed[body.Pid] = true
		ts.afterKill = append(ts.afterKill, killRecovery{account: body.Account, at: time.Now()})
		ts.mu.Unlock()
		if p, err := os.FindProcess(body.Pid); err == nil {
			_ = p.Kill()
		}
		http.Error(w, "killed", 503)
		return
	}
	defer ts.mu.Unlock()
	if ts.valid[body.Account] != body.Refresh {
		ts.reuses = append(ts.reuses, reuse{account: body.Account, token: body.Refresh, consumer: ts.consumedBy[body.Refresh]})
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	ts.issued++
	next := fmt.Sprintf("r-%s-%d", body.Account, ts.issued)
	ts.consumedBy[body.Refresh] = body.Pid
	ts.valid[body.Account] = next
	ts.rotations[body.Account]++
	for i := range ts.afterKill {
		k := &ts.afterKill[i]
		if k.account == body.Account && k.recovered == 0 {
			k.recovered = time.Since(k.at)
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "a-" + next, "refresh_token": next, "expires_in": 3600})
}

var rotationAccounts = []string{"acct-1", "acct-2", "acct-3"}

// rotateForever is a child's loop: for each account in turn, take the
// lock, re-read, call the endpoint, save the pair with the release.
// It returns when its stdin closes, between two rotations.
func rotateForever(ctx context.Context, s *Store, server string) {
	pid := os.Getpid()
	var stop atomic.Bool
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop.Store(true)
	}()
	for i := 0; !stop.Load(); i++ {
		id := rotationAccounts[i%len(rotationAccounts)]
		l, err := s.LockAccount(ctx, id, 30*time.Second)
		if err != nil {
			continue
		}
		snap, err := s.Load(ctx)
		if err != nil {
			l.Release()
			continue
		}
		a, _ := snap.Account(id)
		body, _ := json.Marshal(map[string]any{"Account": id, "Refresh": a.State.Refresh.Reveal(), "Pid": pid})
		resp, err := http.Post(server, "application/json", bytes.NewReader(body))
		if err != nil {
			l.Release()
			continue
		}
		var g struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
		}
		ok := resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&g) == nil
		resp.Body.Close()
		if !ok {
			l.Release()
			continue
		}
		_, _ = l.UpdateState(ctx, func(st *record.StateFile) error {
			st.Accounts[id].Access, st.Accounts[id].Refresh = secret.Secret(g.Access), secret.Secret(g.Refresh)
			return nil
		})
	}
}

// TestRotation_processesShareOneDatabase: several processes rotate the
// same accounts through the refresh lock while some are killed (-9), at
// random moments and in the middle of a token call. No live holder ever
// reuses a consumed token, and a survivor refreshes a killed holder's
// account.
func TestRotation_processesShareOneDatabase(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keyLine := NewKeyLine()
	ks, err := ParseKeys([]byte(keyLine))
	require.NoError(t, err)
	s := openStore(t, conn, ks, "parent")

	ts := &tokenServer{valid: map[string]string{}, consumedBy: map[string]int{}, rotations: map[string]int{}, killed: map[int]bool{}}
	_, err = s.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
		for _, id := range rotationAccounts {
			cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: id, Type: record.AccountOAuth})
			st.Accounts[id] = &record.AccountState{Refresh: secret.Secret("r-" + id + "-0")}
			ts.valid[id] = "r-" + id + "-0"
		}
		return nil
	})
	require.NoError(t, err)
	srv := httptest.NewServer(ts)
	defer srv.Close()

	args, _ := json.Marshal(map[string]string{"Mode": "rotate", "Conn": conn, "Key": keyLine, "Server": srv.URL})
	var mu sync.Mutex
	children := map[int]*exec.Cmd{}
	stdins := map[int]io.Closer{}
	spawn := func() {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+string(args))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		in, err := cmd.StdinPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		line, err := bufio.NewReader(out).ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "ready\n", line)
		mu.Lock()
		children[cmd.Process.Pid] = cmd
		stdins[cmd.Process.Pid] = in
		mu.Unlock()
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range children {
			_ = c.Process.Kill()
			_ = c.Wait()
		}
	}()
	const procs = 4
	for i := 0; i < procs; i++ {
		spawn()
	}
	rotations := func() int {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		n := 0
		for _, r := range ts.rotations {
			n += r
		}
		return n
	}
	reap := func() {
		mu.Lock()
		defer mu.Unlock()
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for pid, c := range children {
			if ts.killed[pid] {
				_ = c.Wait()
				delete(children, pid)
			}
		}
	}

	// lost reports whether every account is lost to the crash window: the
	// token the database holds for it was consumed by a process killed
	// before it saved the answer. This store-level run has no journal (the
	// engine's, which the internal/chaos run exercises), so such an
	// account makes no more rotations, and once all are lost, waiting for
	// more would wait for ever.
	lost := func() bool {
		snap, err := s.Load(ctx)
		if err != nil {
			return false
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, id := range rotationAccounts {
			a, ok := snap.Account(id)
			if !ok {
				return false
			}
			pid, consumed := ts.consumedBy[a.State.Refresh.Reveal()]
			if !consumed || !ts.killed[pid] {
				return false
			}
		}
		return true
	}

	const kills = 6
	start := time.Now()
	for k := 0; k < kills; k++ {
		target := rotations() + 20
		require.Eventually(t, func() bool { return rotations() >= target || lost() }, 2*time.Minute, 5*time.Millisecond, "rotations go on (kill %d)", k)
		if rotations() < target {
			t.Logf("after %d kills every account is lost to the crash window; no more kills", k)
			break
		}
		if k%2 == 0 {
			// A kill at a random moment, maybe inside the crash window.
			mu.Lock()
			pids := make([]int, 0, len(children))
			for pid := range children {
				pids = append(pids, pid)
			}
			sort.Ints(pids)
			pid := pids[rand.IntN(len(pids))]
			mu.Unlock()
			ts.mu.Lock()
			ts.killed[pid] = true
			ts.mu.Unlock()
			_ = children[pid].Process.Kill()
		} else {
			// A kill of the holder in the middle of its token call.
			armed := make(chan struct{})
			ts.mu.Lock()
			ts.killNext = func(int) bool { close(armed); return true }
			ts.mu.Unlock()
			select {
			case <-armed:
			case <-time.After(2 * time.Minute):
				t.Fatal("no token call to kill")
			}
		}
		reap()
		spawn()
	}
	require.Eventually(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, k := range ts.afterKill {
			if k.recovered == 0 {
				return false
			}
		}
		return true
	}, 2*time.Minute, time.Millisecond, "a survivor refreshes every killed holder's account")
	elapsed := time.Since(start)

	// The survivors stop between two rotations.
	mu.Lock()
	for pid, c := range children {
		_ = stdins[pid].Close()
		_ = c.Wait()
		delete(children, pid)
	}
	mu.Unlock()

	ts.mu.Lock()
	defer ts.mu.Unlock()
	// Each consumed token counts once: after its first invalid_grant the
	// other processes try it too (they do not record the error).
	races, crashWindow := 0, 0
	counted := map[string]bool{}
	for _, r := range ts.reuses {
		if counted[r.token] {
			continue
		}
		counted[r.token] = true
		if ts.killed[r.consumer] {
			crashWindow++
		} else {
			races++
		}
	}
	assert.Zero(t, races, "a consumed token reused while its consumer lived: two holders at once")
	snap, err := s.Load(ctx)
	require.NoError(t, err)
	assert.Len(t, snap.Accounts, len(rotationAccounts), "no account lost")
	for _, id := range rotationAccounts {
		a, ok := snap.Account(id)
		require.True(t, ok)
		if tok := a.State.Refresh.Reveal(); tok != ts.valid[id] {
			assert.True(t, ts.killed[ts.consumedBy[tok]], "%s holds a consumed token whose consumer was not killed before saving", id)
		}
	}
	recov := make([]string, 0, len(ts.afterKill))
	for _, k := range ts.afterKill {
		recov = append(recov, k.recovered.Round(time.Millisecond).String())
	}
	t.Logf("%d processes, %v, %d kills (%d mid-call), %d token calls, %d rotations, %d invalid_grant answers for %d distinct tokens: %d from races, %d consumed by a process killed between the answer and its save; killed holder's account refreshed by a survivor after %v",
		procs, elapsed.Round(time.Millisecond), kills, len(ts.afterKill), ts.calls, ts.issued, len(ts.reuses), len(counted), races, crashWindow, recov)
}
