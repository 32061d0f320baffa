package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

// blockHarness adds test/block: an async method that reports it started and
// then waits for its context to end, reporting that too.
func blockHarness(started chan<- string, ended chan<- error) harnessOpts {
	return harnessOpts{table: func(t map[string]method) {
		t["test/block"] = method{async: true, call: func(ctx context.Context, _ *Server, p []byte) (any, error) {
			started <- string(p)
			<-ctx.Done()
			ended <- context.Cause(ctx)
			return "finished anyway", nil
		}}
		t["test/big"] = method{async: true, call: func(_ context.Context, _ *Server, p []byte) (any, error) {
			var n struct{ N int }
			_ = json.Unmarshal(p, &n)
			return strings.Repeat("y", n.N), nil
		}}
	}}
}

func TestServer_cancelRequest(t *testing.T) {
	for _, f := range framings {
		for _, cancelMethod := range []string{"$/cancelRequest", "notifications/cancelled"} {
			t.Run(string(f)+"/"+cancelMethod, func(t *testing.T) {
				started, ended := make(chan string, 1), make(chan error, 1)
				c := startClient(t, f, blockHarness(started, ended))
				c.initialize()
				id := c.request("test/block", map[string]any{"n": 1})
				<-started
				// The read loop is free while test/block runs.
				c.alive()
				key := "id"
				if cancelMethod == "notifications/cancelled" {
					key = "requestId"
				}
				c.notify(cancelMethod, map[string]any{key: id})
				m := c.response(id)
				requireError(t, m, -32800, "cancel")
				require.ErrorIs(t, <-ended, context.Canceled)
				// Cancelling again, or an unknown id, is ignored.
				c.notify(cancelMethod, map[string]any{key: id})
				c.notify(cancelMethod, map[string]any{key: 12345})
				c.alive()
				// The id is free again once the handler returned.
				c.mu.Lock()
				held := len(c.held)
				c.mu.Unlock()
				require.Zero(t, held, "the late handler result must not be sent")
			})
		}
	}
}

func TestServer_duplicateInflightID(t *testing.T) {
	started, ended := make(chan string, 2), make(chan error, 2)
	c := startClient(t, FramingLSP, blockHarness(started, ended))
	c.initialize()
	c.send(`{"jsonrpc":"2.0","id":"dup","method":"test/block"}`)
	<-started
	c.send(`{"jsonrpc":"2.0","id":"dup","method":"test/block"}`)
	m := c.next()
	requireError(t, m, -32600, "still running")
	c.notify("$/cancelRequest", map[string]any{"id": "dup"})
	requireError(t, c.next(), -32800, "")
}

func TestServer_concurrentRequests(t *testing.T) {
	for _, f := range framings {
		t.Run(string(f), func(t *testing.T) {
			started, ended := make(chan string, 1), make(chan error, 1)
			c := startClient(t, f, blockHarness(started, ended))
			c.initialize()
			blocked := c.request("test/block", nil)
			<-started
			// 64 requests in flight at once, inline and async, some with
			// 200 KB results: every frame must arrive whole and matched.
			want := map[string]string{}
			for i := 0; i < 64; i++ {
				var id int
				switch i % 3 {
				case 0:
					id = c.request("ping", nil)
					want[fmt.Sprint(id)] = `{}`
				case 1:
					id = c.request("errors/classify", map[string]any{"source": "token", "status": 429, "headers": map[string]string{"Retry-After": "7"}})
					want[fmt.Sprint(id)] = `{"class":"rate_limited","retryAfterMs":7000,"reason":"429 rate limited","decidedBy":"builtin"}`
				case 2:
					n := 200_000 + i
					id = c.request("test/big", map[string]any{"n": n})
					b, _ := json.Marshal(strings.Repeat("y", n))
					want[fmt.Sprint(id)] = string(b)
				}
			}
			for len(want) > 0 {
				m := c.next()
				exp, ok := want[string(m.ID)]
				require.True(t, ok, "unexpected message %s", m.ID)
				require.Nil(t, m.Error)
				require.JSONEq(t, exp, string(m.Result))
				delete(want, string(m.ID))
			}
			c.notify("$/cancelRequest", map[string]any{"id": blocked})
			requireError(t, c.response(blocked), -32800, "")
		})
	}
}

func TestServer_exitCancelsInflight(t *testing.T) {
	started, ended := make(chan string, 1), make(chan error, 1)
	c := startClient(t, FramingLSP, blockHarness(started, ended))
	c.initialize()
	c.request("test/block", nil)
	<-started
	c.notify("exit", nil)
	require.Equal(t, 1, c.exitCode())
	require.ErrorIs(t, <-ended, context.Canceled)
}

func TestNotifier_afterInitialized(t *testing.T) {
	for _, f := range framings {
		t.Run(string(f), func(t *testing.T) {
			notes := new(Notifier)
			c := startClient(t, f, harnessOpts{mutate: func(o *Options) {
				o.Notifier = notes
				o.ManualClock = core.NewManualClock(time.UnixMilli(1e12))
			}})
			c.initialize()
			notes.Event(core.Event{Kind: core.EventAccountsChanged, Accounts: []string{"b"}})
			notes.Event(core.Event{Kind: core.EventAccountsChanged, Accounts: []string{"a", "b"}})
			notes.Event(core.Event{Kind: core.EventMainRefreshed, Main: &core.MainCredentials{Access: "acc-1", Refresh: "ref-1", Expires: 1}})
			notes.Event(core.Event{Kind: core.EventMainRefreshed, Main: &core.MainCredentials{Access: "acc-2", Refresh: "ref-2", Expires: 2}})
			// Nothing is sent before `initialized`: the next message is the
			// ping's answer.
			id := c.request("ping", nil)
			require.Equal(t, fmt.Sprint(id), string(c.next().ID))

			c.notify("initialized", nil)
			main := c.waitFor(func(m msg) bool { return m.Method == "accounts/mainRefreshed" })
			assert.JSONEq(t, `{"access":"acc-2","refresh":"ref-2","expires":2}`, string(main.Params), "only the newest main tokens")
			changed := c.waitFor(func(m msg) bool { return m.Method == "accounts/changed" })
			assert.JSONEq(t, `{"accounts":["a","b"]}`, string(changed.Params))

			notes.Event(core.Event{Kind: core.EventQuotaChanged, Accounts: []string{"q"}})
			quota := c.waitFor(func(m msg) bool { return m.Method == "quota/changed" })
			assert.JSONEq(t, `{"accounts":["q"]}`, string(quota.Params))
		})
	}
}

func TestServer_backgroundPasses(t *testing.T) {
	passes := make(chan struct{}, 16)
	var mu sync.Mutex
	var running bool
	c := startClient(t, FramingLSP, harnessOpts{mutate: func(o *Options) {
		o.PassInterval, o.PassJitter = time.Millisecond, -1
	}})
	c.srv.pass = func(ctx context.Context) {
		mu.Lock()
		running = true
		mu.Unlock()
		passes <- struct{}{}
		mu.Lock()
		running = false
		mu.Unlock()
	}
	c.initialize()
	c.alive()
	require.Empty(t, passes, "no pass may run before initialized")
	c.notify("initialized", nil)
	<-passes
	<-passes
	require.Nil(t, c.call("shutdown", nil).Error)
	c.srv.bg.Wait() // the timer goroutine has stopped, so no pass runs after shutdown
	for len(passes) > 0 {
		<-passes
	}
	mu.Lock()
	assert.False(t, running)
	mu.Unlock()
	c.alive2()
	assert.Empty(t, passes)
}

func TestServer_manualClockHasNoTimers(t *testing.T) {
	clock := core.NewManualClock(time.UnixMilli(1_700_000_000_000))
	c := startClient(t, FramingNDJSON, harnessOpts{mutate: func(o *Options) {
		o.ManualClock = clock
		o.PassInterval, o.PassJitter = time.Nanosecond, -1
	}})
	c.srv.pass = func(context.Context) { t.Error("a background pass ran with a manual clock") }
	c.initialize()
	c.notify("initialized", nil)
	m := c.call("test/clock/advance", map[string]any{"ms": 1500})
	require.Nil(t, m.Error)
	assert.JSONEq(t, `{"nowMs":1700000001500}`, string(m.Result))
	m = c.call("test/clock/set", map[string]any{"nowMs": 5})
	assert.JSONEq(t, `{"nowMs":5}`, string(m.Result))
	requireError(t, c.call("test/clock/advance", map[string]any{"ms": -1}), -32602, "from 0 to")
	requireError(t, c.call("test/clock/set", map[string]any{}), -32602, "nowMs")
}

func TestServer_testClockNeedsManualClock(t *testing.T) {
	c := startClient(t, FramingLSP, harnessOpts{})
	c.initialize()
	requireError(t, c.call("test/clock/set", map[string]any{"nowMs": 5}), -32601, "")
}

func TestServer_exitsWhenProcessIDDies(t *testing.T) {
	host := exec.Command("sleep", "60")
	require.NoError(t, host.Start())
	c := startClient(t, FramingLSP, harnessOpts{mutate: func(o *Options) { o.ParentPoll = time.Millisecond }})
	m := c.call("initialize", map[string]any{"protocolVersion": ProtocolVersion, "clientInfo": map[string]any{"name": "t"}, "processId": host.Process.Pid})
	require.Nil(t, m.Error)
	c.alive()
	require.NoError(t, host.Process.Kill())
	_ = host.Wait() // reap it, or it lingers as a zombie that signal 0 still finds
	require.Equal(t, 0, c.exitCode())
}
