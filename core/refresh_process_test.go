package core

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rendezvousGuard bounds how long a child waits at a rendezvous for the
// others: a deadlock guard for a child that never arrives, not a speed
// requirement.
const rendezvousGuard = 2 * time.Minute

// rendezvous is an HTTP meeting point for n child processes: every GET is
// answered once all n have arrived, so the children go on together however
// long each took to start. A child that waited rendezvousGuard in vain is
// answered 503.
type rendezvous struct {
	n       int
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newRendezvous(n int) *rendezvous { return &rendezvous{n: n, all: make(chan struct{})} }

func (rv *rendezvous) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rv.mu.Lock()
	if rv.arrived++; rv.arrived == rv.n {
		close(rv.all)
	}
	rv.mu.Unlock()
	select {
	case <-rv.all:
	case <-r.Context().Done():
	case <-time.After(rendezvousGuard):
		http.Error(w, fmt.Sprintf("only %d of %d processes arrived", rv.arrived, rv.n), http.StatusServiceUnavailable)
	}
}

// arrivals reports how many GETs arrived.
func (rv *rendezvous) arrivals() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.arrived
}

// arrive waits at the rendezvous at url.
func arrive(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("rendezvous: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("rendezvous: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// rendezvousClock is the system clock, except that the first Now after
// arm waits at the rendezvous at url first. A refresh reads the engine's
// clock for the first time right after it has loaded the account's state
// (refreshLocked), so once every child has passed the rendezvous,
// every child has read the state it started from: they race for the
// refresh lock with the same starting point, whatever the machine's speed.
type rendezvousClock struct {
	SystemClock
	url   string
	armed atomic.Bool
	err   error // of the rendezvous, read after the refresh returned
}

// arm makes the next Now wait at the rendezvous.
func (c *rendezvousClock) arm() { c.armed.Store(true) }

// Now implements Clock.Now.
func (c *rendezvousClock) Now() time.Time {
	if c.armed.CompareAndSwap(true, false) {
		c.err = arrive(c.url)
	}
	return time.Now()
}

// refreshChild refreshes account "fb" once, meeting the other children at
// the rendezvous once it has read the expired token, and prints the access
// token fingerprint it ended up with.
func refreshChild() int {
	dir := os.Getenv("ACCTPOOL_TEST_DIR")
	store, err := NewStore(StoreOptions{Paths: Paths{
		Config: filepath.Join(dir, "anthropic-auth.json"),
		State:  filepath.Join(dir, "anthropic-auth-state.json"),
	}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	clock := &rendezvousClock{url: os.Getenv("ACCTPOOL_TEST_RENDEZVOUS")}
	e, err := New(Options{Store: store, Clock: clock, Endpoints: Endpoints{Token: os.Getenv("ACCTPOOL_TEST_TOKEN_URL")}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	clock.arm()
	a, err := e.refreshFallback(context.Background(), "fb", false)
	if clock.err != nil {
		fmt.Println("error:", clock.err)
		return 1
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("access:", a.State.Access.Fingerprint())
	return 0
}

// TestEngine_refreshFallback_processesRace: several OS processes find the
// same expired token at once (they meet at a rendezvous after reading it);
// exactly one token call is made and every process ends with the rotated
// token. The fake rejects a reused refresh token with invalid_grant, as
// Anthropic does after rotation.
func TestEngine_refreshFallback_processesRace(t *testing.T) {
	const procs = 4
	var mu sync.Mutex
	used := map[string]bool{}
	calls := 0
	rv := newRendezvous(procs)
	mux := http.NewServeMux()
	mux.Handle("/rendezvous", rv)
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
	cfg, st := oneFallback(time.Now().Add(-time.Minute))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth.json"), []byte(cfg), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth-state.json"), []byte(st), 0o600))

	outs := make([]string, procs)
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := childCommand("refresh-race", "ACCTPOOL_TEST_DIR="+dir,
				"ACCTPOOL_TEST_TOKEN_URL="+srv.URL+"/token", "ACCTPOOL_TEST_RENDEZVOUS="+srv.URL+"/rendezvous")
			out, err := cmd.CombinedOutput()
			outs[i] = strings.TrimSpace(string(out))
			assert.NoError(t, err, "child %d: %s", i, out)
		}(i)
	}
	wg.Wait()
	assert.Equal(t, procs, rv.arrivals(), "every process met the others after reading the expired token")
	mu.Lock()
	assert.Equal(t, 1, calls, "exactly one token call across processes")
	mu.Unlock()
	want := "access: " + secret.Secret("sk-ant-oat01-ROTATED1").Fingerprint()
	for i, out := range outs {
		assert.Equal(t, want, out, "process %d adopted the rotated token", i)
	}
}
