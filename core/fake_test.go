package core

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
)

// scripted is one canned response of the fake upstream.
type scripted struct {
	status int
	body   string
	header map[string]string
	// close drops the connection instead of answering (a network error).
	close bool
}

// fakeUpstream is an httptest server for the token and usage endpoints that
// answers from per-endpoint scripts (the last entry repeats) and records
// every request.
type fakeUpstream struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	scripts map[string][]scripted
	calls   map[string][]recorded
}

type recorded struct {
	header http.Header
	body   map[string]any
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{t: t, scripts: map[string][]scripted{}, calls: map[string][]recorded{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/oauth/token", func(w http.ResponseWriter, r *http.Request) { f.serve("token", w, r) })
	mux.HandleFunc("/api/oauth/usage", func(w http.ResponseWriter, r *http.Request) { f.serve("usage", w, r) })
	mux.HandleFunc("/api/oauth/profile", func(w http.ResponseWriter, r *http.Request) { f.serve("profile", w, r) })
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) script(endpoint string, rs ...scripted) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.scripts[endpoint] = append(f.scripts[endpoint], rs...)
}

func (f *fakeUpstream) count(endpoint string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[endpoint])
}

func (f *fakeUpstream) last(endpoint string) recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls[endpoint]
	require.NotEmpty(f.t, c, "no %s call", endpoint)
	return c[len(c)-1]
}

func (f *fakeUpstream) serve(endpoint string, w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := recorded{header: r.Header.Clone()}
	_ = json.Unmarshal(raw, &rec.body)
	f.mu.Lock()
	f.calls[endpoint] = append(f.calls[endpoint], rec)
	s := f.scripts[endpoint]
	var resp scripted
	switch len(s) {
	case 0:
		resp = scripted{status: 599, body: "unscripted"}
	case 1:
		resp = s[0]
	default:
		resp = s[0]
		f.scripts[endpoint] = s[1:]
	}
	f.mu.Unlock()
	if resp.close {
		hj, ok := w.(http.Hijacker)
		require.True(f.t, ok)
		conn, _, err := hj.Hijack()
		require.NoError(f.t, err)
		conn.Close()
		return
	}
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	_, _ = io.WriteString(w, resp.body)
}

// testEnv is an engine over temp files, a manual clock and the fake.
type testEnv struct {
	t      *testing.T
	dir    string
	paths  Paths
	clock  *ManualClock
	fake   *fakeUpstream
	engine *Engine
	events []Event
	evMu   sync.Mutex
	// timers holds the write-behind flushes; tests fire them by hand.
	timers *manualTimers
}

var testStart = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func newTestEnv(t *testing.T, config, state string) *testEnv {
	t.Helper()
	dir := t.TempDir()
	env := &testEnv{t: t, dir: dir, clock: NewManualClock(testStart), fake: newFakeUpstream(t), timers: &manualTimers{}}
	env.paths = Paths{
		Config:       filepath.Join(dir, "anthropic-auth.json"),
		State:        filepath.Join(dir, "anthropic-auth-state.json"),
		RoutingState: filepath.Join(dir, "anthropic-auth-routing-state.json"),
	}
	if config != "" {
		require.NoError(t, os.WriteFile(env.paths.Config, []byte(config), 0o600))
	}
	if state != "" {
		require.NoError(t, os.WriteFile(env.paths.State, []byte(state), 0o600))
	}
	store, err := NewStore(StoreOptions{Paths: env.paths, AfterFunc: env.timers.AfterFunc})
	require.NoError(t, err)
	env.engine, err = New(Options{
		Store: store,
		Clock: env.clock,
		Endpoints: Endpoints{
			Token:   env.fake.srv.URL + "/v1/oauth/token",
			Usage:   env.fake.srv.URL + "/api/oauth/usage",
			Profile: env.fake.srv.URL + "/api/oauth/profile",
		},
		OnEvent: func(ev Event) { env.evMu.Lock(); env.events = append(env.events, ev); env.evMu.Unlock() },
	})
	require.NoError(t, err)
	return env
}

func (env *testEnv) ctx() context.Context { return context.Background() }

// state reads the state file back as generic JSON, as it is once the
// observations held in memory are written (the write-behind flush,
// BEHAVIOUR.md §1.9); tests of what is not written yet read the file
// directly.
func (env *testEnv) state() map[string]any {
	env.t.Helper()
	require.NoError(env.t, env.engine.Flush(env.ctx()))
	raw, err := os.ReadFile(env.paths.State)
	require.NoError(env.t, err)
	var m map[string]any
	require.NoError(env.t, json.Unmarshal(raw, &m))
	return m
}

// accountState returns the state entry of one account as generic JSON.
func (env *testEnv) accountState(id string) map[string]any {
	env.t.Helper()
	accts, _ := env.state()["accounts"].(map[string]any)
	a, _ := accts[id].(map[string]any)
	return a
}

func ms(t time.Time) int64 { return t.UnixMilli() }

// oneFallback is a config with one OAuth fallback "fb" and a state whose
// token expires at the given time.
func oneFallback(expires time.Time) (string, string) {
	cfg := `{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth","addedAt":1}]}`
	st := `{"version":1,"accounts":{"fb":{"access":"sk-ant-oat01-ACCESSPLANT","refresh":"sk-ant-ort01-REFRESHPLANT","expires":` +
		itoa(ms(expires)) + `}}}`
	return cfg, st
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
