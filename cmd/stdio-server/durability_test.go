package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lateTokenEndpoint is a fake token endpoint that consumes a refresh token
// as soon as a request arrives (a reused one gets invalid_grant, as
// Anthropic answers after a rotation), signals arrived, and answers only
// once the test closes answer: the fault under test happens in between.
type lateTokenEndpoint struct {
	srv     *httptest.Server
	arrived chan struct{}
	answer  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	used    map[string]bool
	calls   int
}

// release lets the endpoint answer; safe to call more than once.
func (f *lateTokenEndpoint) release() { f.once.Do(func() { close(f.answer) }) }

func newLateTokenEndpoint(t *testing.T, prefix string) *lateTokenEndpoint {
	f := &lateTokenEndpoint{arrived: make(chan struct{}, 8), answer: make(chan struct{}), used: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Refresh string `json:"refresh_token"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		f.mu.Lock()
		f.calls++
		n := f.calls
		reused := f.used[body.Refresh]
		f.used[body.Refresh] = true
		f.mu.Unlock()
		if reused {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		f.arrived <- struct{}{}
		<-f.answer
		_, _ = io.WriteString(w, `{"access_token":"sk-ant-oat01-`+prefix+itoaTest(n)+`","refresh_token":"sk-ant-ort01-`+prefix+itoaTest(n)+`","expires_in":28800}`)
	}))
	t.Cleanup(f.srv.Close)
	t.Cleanup(f.release) // runs first: a failed test must not hang Close
	return f
}

func itoaTest(n int) string { b, _ := json.Marshal(n); return string(b) }

func execServer(args ...string) *exec.Cmd { return exec.Command(serverBin, args...) }

// plantFallback writes a config with one OAuth fallback "fb" whose token is
// fresh (only a forced refresh touches it) and returns the paths' args.
func plantFallback(t *testing.T) (args []string, statePath string) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "anthropic-auth.json")
	st := filepath.Join(dir, "anthropic-auth-state.json")
	require.NoError(t, os.WriteFile(cfg, []byte(`{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth","addedAt":1}]}`), 0o600))
	exp := time.Now().Add(8 * time.Hour).UnixMilli()
	require.NoError(t, os.WriteFile(st, []byte(`{"version":1,"accounts":{"fb":{"access":"sk-ant-oat01-OLD","refresh":"sk-ant-ort01-OLD","expires":`+itoaTest(int(exp))+`}}}`), 0o600))
	return []string{"--config", cfg, "--state", st}, st
}

func storedRefresh(t *testing.T, statePath string) string {
	t.Helper()
	raw, err := os.ReadFile(statePath)
	require.NoError(t, err)
	var st struct {
		Accounts map[string]struct {
			Refresh string `json:"refresh"`
		} `json:"accounts"`
	}
	require.NoError(t, json.Unmarshal(raw, &st))
	return st.Accounts["fb"].Refresh
}

// TestBinary_rotationSurvivesFaults: the token endpoint has consumed the
// old refresh token when the request is cancelled, stdin closes, SIGTERM
// or SIGINT arrives, the host sends exit or the initialize processId dies;
// the rotation still completes, the state
// file holds the new pair when the server is gone, and the next server
// refreshes with it (no invalid_grant).
func TestBinary_rotationSurvivesFaults(t *testing.T) {
	host := exec.Command("sleep", "600") // the "parent" whose death ends the server
	require.NoError(t, host.Start())
	t.Cleanup(func() { _ = host.Process.Kill(); _ = host.Wait() })
	faults := []struct {
		name string
		// fault happens after the endpoint consumed the token.
		fault func(t *testing.T, p *proc)
		init  map[string]any
	}{
		{name: "cancelRequest", fault: func(t *testing.T, p *proc) {
			require.NoError(t, p.Notify("$/cancelRequest", map[string]any{"id": p.ID()}))
		}},
		{name: "stdin EOF", fault: func(t *testing.T, p *proc) { require.NoError(t, p.stdin.Close()) }},
		{name: "SIGTERM", fault: func(t *testing.T, p *proc) { require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM)) }},
		{name: "SIGINT", fault: func(t *testing.T, p *proc) { require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT)) }},
		{name: "exit", fault: func(t *testing.T, p *proc) { require.NoError(t, p.Notify("exit", nil)) }},
		{name: "parent death", fault: func(t *testing.T, p *proc) {
			require.NoError(t, host.Process.Kill())
			_ = host.Wait()
		}, init: map[string]any{"processId": host.Process.Pid}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			tok := newLateTokenEndpoint(t, "A")
			args, statePath := plantFallback(t)
			p := spawnCmd(t, execServer(append(args, "--framing", "lsp", "--token-url", tok.srv.URL)...), "lsp")
			p.initialize(f.init)
			ch, err := p.Go("accounts/refresh", map[string]any{"id": "fb"})
			require.NoError(t, err)
			select {
			case <-tok.arrived:
			case <-time.After(guard):
				t.Fatal("the token endpoint was never called")
			}
			f.fault(t, p)
			if f.name == "cancelRequest" {
				select {
				case m := <-ch:
					requireCode(t, m, -32800)
				case <-time.After(guard):
					t.Fatal("the cancelled request was never answered")
				}
				require.NoError(t, p.stdin.Close())
			}
			// The server is on its way out (or gave up the request) and
			// waits for the rotation: only now does the endpoint answer.
			waitStderr(t, p, "waiting for rotations in flight before exit")
			tok.release()
			p.exitCode()
			assert.Contains(t, p.stderr.String(), "rotations in flight finished")
			assert.Equal(t, "sk-ant-ort01-A1", storedRefresh(t, statePath), "the rotated pair is on disk")

			// The next server refreshes with the new token; the consumed
			// one would get invalid_grant.
			next := newLateTokenEndpoint(t, "B")
			next.release()
			next.used["sk-ant-ort01-OLD"] = true
			q := spawnCmd(t, execServer(append(args, "--framing", "lsp", "--token-url", next.srv.URL)...), "lsp")
			q.initialize(nil)
			m := q.call("accounts/refresh", map[string]any{"id": "fb"})
			require.Nil(t, m.Error, "refresh after the fault")
			assert.Equal(t, "sk-ant-ort01-B1", storedRefresh(t, statePath))
		})
	}
}

// waitStderr waits until the server's log contains s (and goes on, failed,
// if it never does, so that the test still checks what reached the disk).
func waitStderr(t *testing.T, p *proc, s string) {
	t.Helper()
	assert.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), s) }, guard, 5*time.Millisecond,
		"server log never said %q", s)
}
