package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

// fieldOf returns data.field of an error answer.
func fieldOf(t *testing.T, m msg) string {
	t.Helper()
	require.NotNil(t, m.Error)
	var data struct {
		Field string `json:"field"`
	}
	require.NoError(t, json.Unmarshal(m.Error.Data, &data))
	return data.Field
}

func TestServer_looseParamsRefused(t *testing.T) {
	route := map[string]any{"accountId": "a1", "kind": "api", "reason": "x", "credential": map[string]any{"type": "x-api-key", "token": "k"}}
	cases := []struct {
		name   string
		method string
		params any
		field  string // "" means the params pass the checks
	}{
		{"report status -1", "route/report", map[string]any{"route": route, "status": -1}, "status"},
		{"report status 99", "route/report", map[string]any{"route": route, "status": 99}, "status"},
		{"report status 600", "route/report", map[string]any{"route": route, "status": 600}, "status"},
		{"report status 999", "route/report", map[string]any{"route": route, "status": 999}, "status"},
		{"report status 0 without network", "route/report", map[string]any{"route": route, "status": 0}, "status"},
		{"report status 0 with network", "route/report", map[string]any{"route": route, "status": 0, "network": true}, ""},
		{"report status 100", "route/report", map[string]any{"route": route, "status": 100}, ""},
		{"report status 599", "route/report", map[string]any{"route": route, "status": 599}, ""},
		{"classify status 600", "errors/classify", map[string]any{"source": "messages", "status": 600}, "status"},
		{"classify status -1", "errors/classify", map[string]any{"source": "messages", "status": -1}, "status"},
		{"classify status 0", "errors/classify", map[string]any{"source": "messages", "status": 0, "network": true}, ""},
		{"login mode bogus", "accounts/login/start", map[string]any{"mode": "bogus"}, "mode"},
		{"login mode MAX", "accounts/login/start", map[string]any{"mode": "MAX"}, "mode"},
		{"login mode max", "accounts/login/start", map[string]any{"mode": "max"}, ""},
		{"login mode console", "accounts/login/start", map[string]any{"mode": "console"}, ""},
		{"login no mode", "accounts/login/start", nil, ""},
	}
	c := startClient(t, FramingLSP, harnessOpts{})
	c.initialize()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			m := c.call(tc.method, tc.params)
			if tc.field == "" {
				if m.Error != nil {
					assert.NotEqual(t, int64(-32602), m.Error.Code, m.Error.Message)
				}
				return
			}
			requireError(t, m, -32602, tc.field)
			assert.Equal(t, tc.field, fieldOf(t, m))
		})
	}
}

func TestServer_clockMillisRangeChecked(t *testing.T) {
	start := time.UnixMilli(1_700_000_000_000)
	clock := core.NewManualClock(start)
	c := startClient(t, FramingNDJSON, harnessOpts{mutate: func(o *Options) { o.ManualClock = clock }})
	c.initialize()
	cases := []struct {
		name   string
		method string
		params map[string]any
		field  string
	}{
		{"advance past int64 nanoseconds", "test/clock/advance", map[string]any{"ms": 9223372036855}, "ms"},
		{"advance by the largest int64", "test/clock/advance", map[string]any{"ms": int64(9223372036854775807)}, "ms"},
		{"advance negative", "test/clock/advance", map[string]any{"ms": -1}, "ms"},
		{"set negative", "test/clock/set", map[string]any{"nowMs": -1}, "nowMs"},
		{"set past year 9999", "test/clock/set", map[string]any{"nowMs": 253402300800000}, "nowMs"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			m := c.call(tc.method, tc.params)
			requireError(t, m, -32602, tc.field)
			assert.Equal(t, tc.field, fieldOf(t, m))
			assert.Equal(t, start, clock.Now(), "a refused call must not move the clock")
		})
	}
	t.Run("advance past year 9999", func(t *testing.T) {
		c.t = t
		late := time.UnixMilli(maxClockMs - 10)
		clock.Set(late)
		m := c.call("test/clock/advance", map[string]any{"ms": 11})
		requireError(t, m, -32602, "9999")
		assert.Equal(t, "ms", fieldOf(t, m))
		assert.Equal(t, late, clock.Now())
		m = c.call("test/clock/advance", map[string]any{"ms": 10})
		require.Nil(t, m.Error)
		clock.Set(start)
	})
	m := c.call("test/clock/advance", map[string]any{"ms": 60_000})
	require.Nil(t, m.Error)
	assert.Equal(t, start.Add(time.Minute), clock.Now())
}

func TestServer_initializeLSPShape(t *testing.T) {
	cases := []struct {
		name    string
		params  string
		version string // the answered protocolVersion; "" means an error
		field   string
	}{
		{"LSP shape", fmt.Sprintf(`{"processId":%d,"clientInfo":{"name":"vscode","version":"1.90"},"capabilities":{}}`, os.Getpid()), ProtocolVersion, ""},
		{"LSP shape with the other LSP members", `{"processId":null,"clientInfo":{"name":"x"},"locale":"en","rootPath":null,"rootUri":null,"initializationOptions":{},"capabilities":{"general":{}},"trace":"off","workspaceFolders":null}`, ProtocolVersion, ""},
		{"no clientInfo", `{"processId":null,"capabilities":{}}`, ProtocolVersion, ""},
		{"empty params", `{}`, ProtocolVersion, ""},
		{"no params", ``, ProtocolVersion, ""},
		{"MCP shape", `{"protocolVersion":"1.0","clientInfo":{"name":"mcp"},"capabilities":{}}`, "1.0", ""},
		{"unsupported version gets the newest", `{"protocolVersion":"99.0"}`, ProtocolVersion, ""},
		{"clientInfo without a name", `{"clientInfo":{}}`, "", "clientInfo.name"},
		{"protocolVersion not a string", `{"protocolVersion":1}`, "", "protocolVersion"},
		{"unknown member", `{"bogus":1}`, "", "bogus"},
		{"processId zero", `{"processId":0}`, "", "processId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startClient(t, FramingLSP, harnessOpts{})
			body := `{"jsonrpc":"2.0","id":1,"method":"initialize"}`
			if tc.params != "" {
				body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":` + tc.params + `}`
			}
			c.send(body)
			m := c.next()
			if tc.version == "" {
				requireError(t, m, -32602, tc.field)
				assert.Equal(t, tc.field, fieldOf(t, m))
				return
			}
			require.Nil(t, m.Error, "%+v", m.Error)
			var res initializeResult
			require.NoError(t, json.Unmarshal(m.Result, &res))
			assert.Equal(t, tc.version, res.ProtocolVersion)
			c.alive()
		})
	}
}

// TestServer_shutdownAnswersLast sends a slow request, shutdown and exit
// back to back: the slow request is answered before shutdown is, and exit
// waits for both.
func TestServer_shutdownAnswersLast(t *testing.T) {
	for _, f := range framings {
		for _, end := range []string{"exit", "EOF"} {
			t.Run(string(f)+"/"+end, func(t *testing.T) {
				release := make(chan struct{})
				entered := make(chan struct{})
				c := startClient(t, f, harnessOpts{table: func(tb map[string]method) {
					tb["test/slow"] = method{async: true, call: func(ctx context.Context, _ *Server, _ []byte) (any, error) {
						close(entered)
						<-release
						return "slow done", nil
					}}
				}})
				c.initialize()
				slow := c.request("test/slow", nil)
				<-entered
				down := c.request("shutdown", nil)
				if end == "exit" {
					c.notify("exit", nil)
				} else {
					require.NoError(t, c.in.Close())
				}
				// Nothing may be answered, nor may Serve return, while
				// test/slow runs; ping (refused, -32600) proves the read
				// loop has handled shutdown and exit.
				if end == "exit" {
					select {
					case code := <-c.done:
						t.Fatalf("Serve returned %d before the answers were written", code)
					default:
					}
				}
				close(release)
				first := c.next()
				assert.Equal(t, fmt.Sprint(slow), string(first.ID), "the slow request is answered first")
				assert.JSONEq(t, `"slow done"`, string(first.Result))
				second := c.next()
				assert.Equal(t, fmt.Sprint(down), string(second.ID))
				assert.Nil(t, second.Error)
				assert.Equal(t, 0, c.exitCode())
			})
		}
	}
}

// TestServer_updateShutdownExit is the case: accounts/update,
// shutdown and exit in one write; the update's answer arrives.
func TestServer_updateShutdownExit(t *testing.T) {
	c := startClient(t, FramingLSP, harnessOpts{})
	c.initialize()
	add := c.call("accounts/add", map[string]any{"type": "api", "id": "k1", "apiKey": "sk-ant-api03-test", "baseURL": "https://api.example.com"})
	require.Nil(t, add.Error, "%+v", add.Error)
	var batch []byte
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":"u","method":"accounts/update","params":{"id":"k1","label":"renamed"}}`,
		`{"jsonrpc":"2.0","id":"s","method":"shutdown"}`,
		`{"jsonrpc":"2.0","method":"exit"}`,
	} {
		batch = c.frame(batch, []byte(body))
	}
	c.sendRaw(string(batch))
	m := c.next()
	require.Equal(t, `"u"`, string(m.ID), "the update is answered before shutdown")
	require.Nil(t, m.Error, "%+v", m.Error)
	assert.Contains(t, string(m.Result), "renamed")
	m = c.next()
	assert.Equal(t, `"s"`, string(m.ID))
	assert.Equal(t, 0, c.exitCode())
}

// TestServer_exitAfterShutdownIsBounded: a request that never ends does
// not keep the server alive after shutdown and exit for longer than
// DrainTimeout; it is then cancelled.
func TestServer_exitAfterShutdownIsBounded(t *testing.T) {
	started, ended := make(chan string, 1), make(chan error, 1)
	h := blockHarness(started, ended)
	h.mutate = func(o *Options) { o.DrainTimeout = time.Millisecond }
	c := startClient(t, FramingLSP, h)
	c.initialize()
	c.request("test/block", nil)
	<-started
	c.request("shutdown", nil)
	c.notify("exit", nil)
	assert.Equal(t, 0, c.exitCode())
	require.ErrorIs(t, <-ended, context.Canceled)
}
