package rpc

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

// BenchmarkServer_roundTrip measures one request/response over in-memory
// pipes, framing to framing, for an inline method (ping), an async one
// (errors/classify), route/select on an engine without accounts (the
// no-route error path) and route/select:main, the hot path: main with a
// fresh token and a fresh quota, as rpcload's fixture. The spawned-process
// comparison with a bare sourcegraph/jsonrpc2 echo server is rpcload's job
// (cmd/stdio-server/internal/rpcload); this one is for profiling.
func BenchmarkServer_roundTrip(b *testing.B) {
	selectParams := map[string]any{"sessionId": "s", "model": "m", "promptBytes": 100}
	cases := []struct {
		name   string
		method string
		params any
		main   bool
	}{
		{"ping", "ping", nil, false},
		{"errors/classify", "errors/classify", map[string]any{"source": "messages", "status": 429}, false},
		{"route/select", "route/select", selectParams, false},
		{"route/select:main", "route/select", selectParams, true},
	}
	for _, f := range framings {
		for _, tc := range cases {
			b.Run(string(f)+"/"+tc.name, func(b *testing.B) {
				t := &testing.T{}
				var c *pipeClient
				if tc.main {
					c, _ = startMainFixture(t, f)
				} else {
					c = startClient(t, f, harnessOpts{})
					c.t = t
					c.initialize()
				}
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					c.call(tc.method, tc.params)
				}
				b.StopTimer()
				c.in.Close()
				<-c.done
			})
		}
	}
}

// refusingDoer fails every HTTP request and counts them, so a fixture
// never reaches the network and a test can tell it made no request.
type refusingDoer struct{ calls atomic.Int64 }

func (d *refusingDoer) Do(*http.Request) (*http.Response, error) {
	d.calls.Add(1)
	return nil, errors.New("no network in this fixture")
}

// startMainFixture starts an initialized server whose route/select routes
// to main without a refresh or a quota check: main has a token valid for a
// day and a quota from the rate-limit headers of a served response.
func startMainFixture(t *testing.T, f Framing) (*pipeClient, *refusingDoer) {
	doer := &refusingDoer{}
	c := startClient(t, f, harnessOpts{mutate: func(o *Options) {
		dir := t.TempDir()
		store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{
			Config: filepath.Join(dir, "anthropic-auth.json"),
			State:  filepath.Join(dir, "anthropic-auth-state.json"),
		}})
		require.NoError(t, err)
		o.Engine, err = core.New(core.Options{Store: store, HTTP: doer})
		require.NoError(t, err)
	}})
	c.t = t
	c.initialize()
	now := time.Now()
	m := c.call("accounts/setMain", map[string]any{"access": "bench-access", "refresh": "bench-refresh", "expires": now.Add(24 * time.Hour).UnixMilli()})
	require.Nil(t, m.Error)
	m = c.call("route/report", map[string]any{
		"route":      map[string]any{"accountId": "main", "kind": "main", "credential": map[string]any{"type": "bearer", "token": "x"}},
		"status":     200,
		"replayable": true,
		"headers": map[string]string{
			"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1",
			"anthropic-ratelimit-unified-5h-reset": strconv.FormatInt(now.Add(3*time.Hour).Unix(), 10),
			"anthropic-ratelimit-unified-7d-reset": strconv.FormatInt(now.Add(72*time.Hour).Unix(), 10),
		},
	})
	require.Nil(t, m.Error)
	return c, doer
}

// TestServer_roundTripFixture checks the benchmark's calls answer as
// expected, so the benchmark measures real work.
func TestServer_roundTripFixture(t *testing.T) {
	c := startClient(t, FramingLSP, harnessOpts{})
	c.initialize()
	c.alive()
	m := c.call("errors/classify", map[string]any{"source": "messages", "status": 429})
	if m.Error != nil {
		t.Fatal(m.Error.Message)
	}
}

// TestServer_roundTripMainFixture checks that route/select:main routes to
// main, twice, without any HTTP request: the benchmark times a selection
// from memory, not a refresh or a quota poll.
func TestServer_roundTripMainFixture(t *testing.T) {
	c, doer := startMainFixture(t, FramingLSP)
	for range 2 {
		m := c.call("route/select", map[string]any{"sessionId": "s", "model": "m", "promptBytes": 100})
		require.Nil(t, m.Error)
		var r struct {
			AccountID string `json:"accountId"`
			Ticket    string `json:"ticket"`
		}
		require.NoError(t, json.Unmarshal(m.Result, &r))
		assert.Equal(t, "main", r.AccountID)
		assert.NotEmpty(t, r.Ticket)
	}
	assert.Zero(t, doer.calls.Load(), "HTTP requests made by the fixture")
}
