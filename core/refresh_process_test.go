package core

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childRole selects what a re-executed test binary does.
const childRole = "ACCTPOOL_TEST_CHILD"

// TestRefreshChild is the body of a re-executed child process; in a normal
// run it has nothing to do and returns at once.
func TestRefreshChild(t *testing.T) {
	if os.Getenv(childRole) != "refresh" {
		return
	}
	os.Exit(refreshChild())
}

// refreshChild refreshes account "fb" once, after waiting for the common
// start time, and prints the access token fingerprint it ended up with.
func refreshChild() int {
	dir := os.Getenv("ACCTPOOL_TEST_DIR")
	startAt, _ := strconv.ParseInt(os.Getenv("ACCTPOOL_TEST_START"), 10, 64)
	store, err := NewStore(StoreOptions{Paths: Paths{
		Config: filepath.Join(dir, "anthropic-auth.json"),
		State:  filepath.Join(dir, "anthropic-auth-state.json"),
	}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	e, err := New(Options{Store: store, Endpoints: Endpoints{Token: os.Getenv("ACCTPOOL_TEST_TOKEN_URL")}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	for time.Now().UnixMilli() < startAt {
		time.Sleep(time.Millisecond)
	}
	a, err := e.refreshFallback(context.Background(), "fb", false)
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("access:", a.State.Access.Fingerprint())
	return 0
}

// TestEngine_refreshFallback_processesRace: several OS processes find the
// same expired token at once; exactly one token call is made and every
// process ends with the rotated token. The fake rejects a reused refresh
// token with invalid_grant, as Anthropic does after rotation.
func TestEngine_refreshFallback_processesRace(t *testing.T) {
	const procs = 4
	var mu sync.Mutex
	used := map[string]bool{}
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	defer srv.Close()

	dir := t.TempDir()
	cfg, st := oneFallback(time.Now().Add(-time.Minute))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth.json"), []byte(cfg), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth-state.json"), []byte(st), 0o600))

	start := time.Now().Add(300 * time.Millisecond).UnixMilli()
	outs := make([]string, procs)
	var wg sync.WaitGroup
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestRefreshChild$")
			cmd.Env = append(os.Environ(), childRole+"=refresh", "ACCTPOOL_TEST_DIR="+dir,
				"ACCTPOOL_TEST_TOKEN_URL="+srv.URL, "ACCTPOOL_TEST_START="+strconv.FormatInt(start, 10))
			out, err := cmd.CombinedOutput()
			outs[i] = strings.TrimSpace(string(out))
			assert.NoError(t, err, "child %d: %s", i, out)
		}(i)
	}
	wg.Wait()
	mu.Lock()
	assert.Equal(t, 1, calls, "exactly one token call across processes")
	mu.Unlock()
	want := "access: " + Secret("sk-ant-oat01-ROTATED1").Fingerprint()
	for i, out := range outs {
		assert.Equal(t, want, out, "process %d adopted the rotated token", i)
	}
}
