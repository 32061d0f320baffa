package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one scripted exchange: a body (framed by the client) or raw
// bytes (sent as they are), and the answer expected. Every step is
// followed by a ping that must still work.
type step struct {
	name   string
	body   string
	raw    map[Framing]string
	silent bool   // no answer expected
	id     string // expected response id as JSON
	code   int64  // expected error code; 0 means a result
	text   string // substring of the error message
	field  string // expected data.field
	result string // expected result JSON, when set
}

func runSteps(t *testing.T, f Framing, initialize bool, steps []step, h harnessOpts) {
	c := startClient(t, f, h)
	if initialize {
		c.initialize()
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c.t = t
			if s.raw != nil {
				raw, ok := s.raw[f]
				if !ok {
					t.Skip("step does not apply to this framing")
				}
				c.sendRaw(raw)
			} else {
				c.send(s.body)
			}
			if s.silent {
				id := c.request("ping", nil)
				m := c.next()
				require.Equal(t, fmt.Sprint(id), string(m.ID), "something was answered: %+v", m)
				return
			}
			m := c.next()
			require.Equal(t, s.id, string(m.ID))
			if s.code == 0 {
				require.Nil(t, m.Error)
				if s.result != "" {
					require.JSONEq(t, s.result, string(m.Result))
				}
			} else {
				requireError(t, m, s.code, s.text)
				var data struct {
					Kind  string `json:"kind"`
					Field string `json:"field"`
				}
				require.NoError(t, json.Unmarshal(m.Error.Data, &data))
				assert.NotEmpty(t, data.Kind)
				assert.Equal(t, s.field, data.Field)
			}
			c.alive()
		})
	}
}

func withLength(header, body string) string { return fmt.Sprintf(header, len(body)) + body }

func pad(n int) string { return strings.Repeat("x", n) }

var malformedSteps = []step{
	{name: "malformed JSON", body: `{"jsonrpc":"2.0","id":1,"method":`, id: "1", code: -32700},
	{name: "garbage", body: `hello`, id: "null", code: -32700},
	{name: "number", body: `42`, id: "null", code: -32600, text: "JSON object"},
	{name: "string", body: `"ping"`, id: "null", code: -32600},
	{name: "object that is no request", body: `{"jsonrpc":"2.0","foo":1}`, id: "null", code: -32600},
	{name: "id without method", body: `{"jsonrpc":"2.0","id":9}`, id: "9", code: -32600},
	{name: "fractional id", body: `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, id: "null", code: -32600, text: "id"},
	{name: "negative id", body: `{"jsonrpc":"2.0","id":-5,"method":"ping"}`, id: "null", code: -32600},
	{name: "exponent id", body: `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, id: "null", code: -32600},
	{name: "null id", body: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, id: "null", code: -32600},
	{name: "boolean id", body: `{"jsonrpc":"2.0","id":true,"method":"ping"}`, id: "null", code: -32600},
	{name: "id above 2^53", body: `{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`, id: "null", code: -32600},
	{name: "missing jsonrpc", body: `{"id":10,"method":"ping"}`, id: "10", code: -32600, text: "jsonrpc"},
	{name: "wrong jsonrpc", body: `{"jsonrpc":"1.0","id":10,"method":"ping"}`, id: "10", code: -32600},
	{name: "method not a string", body: `{"jsonrpc":"2.0","id":11,"method":5}`, id: "11", code: -32600},
	{name: "method and result", body: `{"jsonrpc":"2.0","id":12,"method":"ping","result":1}`, id: "12", code: -32600},
	{name: "batch", body: `[{"jsonrpc":"2.0","id":13,"method":"ping"},{"jsonrpc":"2.0","id":14,"method":"ping"}]`, id: "null", code: -32600, text: "batch"},
	{name: "empty batch", body: `[]`, id: "null", code: -32600},
	{name: "broken batch", body: `[{"jsonrpc":"2.0"`, id: "null", code: -32700},
	{name: "unknown method", body: `{"jsonrpc":"2.0","id":15,"method":"no/such"}`, id: "15", code: -32601, text: "no/such"},
	{name: "unknown $/ request", body: `{"jsonrpc":"2.0","id":16,"method":"$/foo"}`, id: "16", code: -32601},
	{name: "unknown notification", body: `{"jsonrpc":"2.0","method":"$/foo"}`, silent: true},
	{name: "stray response", body: `{"jsonrpc":"2.0","id":99,"result":1}`, silent: true},
	{name: "string id", body: `{"jsonrpc":"2.0","id":"abc","method":"ping"}`, id: `"abc"`, result: `{}`},
	{name: "unknown params field", body: `{"jsonrpc":"2.0","id":17,"method":"ping","params":{"x":1}}`, id: "17", code: -32602, text: `"x"`, field: "x"},
	{name: "missing required field", body: `{"jsonrpc":"2.0","id":18,"method":"accounts/get","params":{}}`, id: "18", code: -32602, text: "id", field: "id"},
	{name: "absent params", body: `{"jsonrpc":"2.0","id":19,"method":"accounts/get"}`, id: "19", code: -32602, field: "id"},
	{name: "wrong field type", body: `{"jsonrpc":"2.0","id":20,"method":"accounts/get","params":{"id":5}}`, id: "20", code: -32602, text: "string", field: "id"},
	{name: "nested field type", body: `{"jsonrpc":"2.0","id":21,"method":"quota/observe","params":{"id":"a","headers":{"h":1}}}`, id: "21", code: -32602, field: "headers.h"},
	{name: "params array", body: `{"jsonrpc":"2.0","id":22,"method":"accounts/get","params":["a"]}`, id: "22", code: -32602, text: "object"},
	{name: "bad enum", body: `{"jsonrpc":"2.0","id":23,"method":"errors/classify","params":{"source":"x","status":403}}`, id: "23", code: -32602, field: "source"},
	{name: "panic inline", body: `{"jsonrpc":"2.0","id":24,"method":"test/panic"}`, id: "24", code: -32603},
	{name: "panic async", body: `{"jsonrpc":"2.0","id":25,"method":"test/panicAsync"}`, id: "25", code: -32603},
	{name: "classify works", body: `{"jsonrpc":"2.0","id":26,"method":"errors/classify","params":{"source":"usage","status":403}}`, id: "26",
		result: `{"class":"org_policy","reason":"403 forbidden","decidedBy":"builtin"}`},
	{name: "10 MB frame", body: `{"jsonrpc":"2.0","id":27,"method":"ping","params":{"pad":"` + pad(10_000_000) + `"}}`, id: "27", code: -32600, text: "exceeds"},
	{name: "lower-case header", raw: map[Framing]string{FramingLSP: withLength("content-length: %d\r\n\r\n", `{"jsonrpc":"2.0","id":28,"method":"ping"}`)}, id: "28", result: `{}`},
	{name: "content-type header", raw: map[Framing]string{FramingLSP: withLength("Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nCONTENT-LENGTH:%d\r\n\r\n", `{"jsonrpc":"2.0","id":29,"method":"ping"}`)}, id: "29", result: `{}`},
	{name: "missing content-length", raw: map[Framing]string{FramingLSP: "Content-Type: x\r\n\r\n" + `{"jsonrpc":"2.0","id":30,"method":"ping"}`}, id: "30", code: -32700, text: "Content-Length"},
	{name: "line without colon", raw: map[Framing]string{FramingLSP: "hello world\r\n"}, id: "null", code: -32700},
	{name: "bad content-length", raw: map[Framing]string{FramingLSP: "Content-Length: ten\r\n\r\n"}, id: "null", code: -32700},
	{name: "blank lines", raw: map[Framing]string{FramingNDJSON: "\n\r\n  \n" + `{"jsonrpc":"2.0","id":31,"method":"ping"}` + "\r\n"}, id: "31", result: `{}`},
}

func malformedHarness() harnessOpts {
	return harnessOpts{table: func(t map[string]method) {
		boom := func(context.Context, *Server, []byte) (any, error) { panic("boom") }
		t["test/panic"] = method{call: boom}
		t["test/panicAsync"] = method{call: boom, async: true}
	}}
}

func TestServer_malformedInput(t *testing.T) {
	for _, f := range framings {
		t.Run(string(f), func(t *testing.T) { runSteps(t, f, true, malformedSteps, malformedHarness()) })
	}
}

func TestServer_lifecycle(t *testing.T) {
	initialize := `{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"1.0","clientInfo":{"name":"t"}}}`
	steps := []step{
		{name: "ping before initialize", body: `{"jsonrpc":"2.0","id":1,"method":"ping"}`, id: "1", code: -32002},
		{name: "async method before initialize", body: `{"jsonrpc":"2.0","id":2,"method":"route/select"}`, id: "2", code: -32002},
		{name: "notification before initialize is dropped", body: `{"jsonrpc":"2.0","method":"initialized"}`, silent: true},
	}
	for _, f := range framings {
		t.Run(string(f), func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			for _, s := range steps {
				c.send(s.body)
				if s.silent {
					continue
				}
				requireError(t, c.next(), s.code, "")
			}
			c.send(`{"jsonrpc":"2.0","id":3,"method":"initialize","params":{"protocolVersion":"0.9","clientInfo":{"name":"t"},"processId":null}}`)
			m := c.next()
			require.Equal(t, "3", string(m.ID), "the dropped initialized must not be answered")
			var res initializeResult
			require.NoError(t, json.Unmarshal(m.Result, &res))
			assert.Equal(t, ProtocolVersion, res.ProtocolVersion, "unknown versions get ours")
			assert.Equal(t, ServerName, res.ServerInfo.Name)
			assert.Equal(t, methodNames(methodTable(false)), res.Capabilities.Methods)
			assert.ElementsMatch(t, serverNotifications, res.Capabilities.Notifications)

			c.send(initialize)
			requireError(t, c.next(), -32600, "already")
			// No `initialized` was sent: requests are answered anyway.
			c.alive()
			requireError(t, c.call("accounts/get", map[string]any{}), -32602, "")
			m = c.call("shutdown", nil)
			require.Nil(t, m.Error)
			require.Equal(t, "null", string(m.Result))
			requireError(t, c.call("ping", nil), -32600, "shutting down")
			c.notify("exit", nil)
			require.Equal(t, 0, c.exitCode())
		})
	}
}

func TestServer_exitCodes(t *testing.T) {
	for _, f := range framings {
		t.Run(string(f)+"/exit without shutdown is 1", func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			c.initialize()
			c.notify("exit", nil)
			require.Equal(t, 1, c.exitCode())
		})
		t.Run(string(f)+"/exit before initialize is 1", func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			c.notify("exit", nil)
			require.Equal(t, 1, c.exitCode())
		})
		t.Run(string(f)+"/stdin EOF is 0", func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			c.initialize()
			c.in.Close()
			require.Equal(t, 0, c.exitCode())
		})
		t.Run(string(f)+"/EOF inside a frame is 0", func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			c.sendRaw("Content-Length: 100\r\n\r\n{\"jsonrpc\"")
			c.in.Close()
			require.Equal(t, 0, c.exitCode())
		})
		t.Run(string(f)+"/serve context cancelled is 0", func(t *testing.T) {
			srv, err := New(Options{Engine: newEngine(t), Framing: f})
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int)
			inR, _ := ioPipe()
			go func() { done <- srv.Serve(ctx, inR, discardWriter{}) }()
			cancel()
			require.Equal(t, 0, waitCode(t, done))
		})
	}
}

func TestServer_discover(t *testing.T) {
	for _, f := range framings {
		t.Run(string(f), func(t *testing.T) {
			c := startClient(t, f, harnessOpts{})
			c.initialize()
			m := c.call("rpc.discover", nil)
			require.Nil(t, m.Error)
			var doc struct {
				OpenRPC string `json:"openrpc"`
				Methods []struct {
					Name string `json:"name"`
				} `json:"methods"`
			}
			require.NoError(t, json.Unmarshal(m.Result, &doc))
			assert.NotEmpty(t, doc.OpenRPC)
			documented := map[string]bool{}
			for _, m := range doc.Methods {
				documented[m.Name] = true
			}
			for _, name := range methodNames(methodTable(true)) {
				assert.True(t, documented[name], "%s is served but not in openrpc.json", name)
			}
		})
	}
}
