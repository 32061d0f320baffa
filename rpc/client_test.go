package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

// guard bounds every wait in these tests. It is a deadlock guard, never a
// timing assertion: a passing test never comes near it.
const guard = time.Minute

var framings = []Framing{FramingLSP, FramingNDJSON}

// msg is one message the server wrote.
type msg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64           `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// pipeClient drives an in-process Server over io.Pipes, framing and
// unframing with the same codecs the server uses.
type pipeClient struct {
	t       *testing.T
	srv     *Server
	framing Framing
	in      *io.PipeWriter
	frame   frameWriter
	msgs    chan msg
	done    chan int // Serve's exit code
	nextID  int

	mu     sync.Mutex
	held   []msg // messages read while waiting for another
	rawOut bytes.Buffer
}

type harnessOpts struct {
	mutate func(*Options)
	table  func(map[string]method)
}

func newEngine(t *testing.T) *core.Engine {
	dir := t.TempDir()
	store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{
		Config: filepath.Join(dir, "anthropic-auth.json"),
		State:  filepath.Join(dir, "anthropic-auth-state.json"),
	}})
	require.NoError(t, err)
	eng, err := core.New(core.Options{Store: store})
	require.NoError(t, err)
	return eng
}

func startClient(t *testing.T, f Framing, h harnessOpts) *pipeClient {
	t.Helper()
	opts := Options{Engine: newEngine(t), Framing: f}
	if h.mutate != nil {
		h.mutate(&opts)
	}
	srv, err := New(opts)
	require.NoError(t, err)
	if h.table != nil {
		h.table(srv.methods)
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &pipeClient{t: t, srv: srv, framing: f, in: inW, frame: frameWriterFor(f), msgs: make(chan msg, 1024), done: make(chan int, 1)}
	go func() {
		code := srv.Serve(context.Background(), inR, outW)
		outW.Close()
		c.done <- code
	}()
	go func() {
		r := newFrameReader(f, outR, 64<<20)
		for {
			body, err := r.readFrame()
			if err != nil {
				close(c.msgs)
				return
			}
			var m msg
			if jerr := json.Unmarshal(body, &m); jerr != nil {
				panic(fmt.Sprintf("server wrote a frame that is not JSON: %q", body))
			}
			c.msgs <- m
		}
	}()
	t.Cleanup(func() {
		inW.Close()
		select {
		case <-c.done:
		case <-time.After(guard):
			t.Error("server did not stop after stdin closed")
		}
	})
	return c
}

// sendRaw writes bytes as they are, with no framing.
func (c *pipeClient) sendRaw(b string) {
	_, err := c.in.Write([]byte(b))
	require.NoError(c.t, err)
}

// send frames body and writes it.
func (c *pipeClient) send(body string) { c.sendRaw(string(c.frame(nil, []byte(body)))) }

// request sends a request with a fresh numeric id and returns the id.
func (c *pipeClient) request(method string, params any) int {
	c.nextID++
	body := map[string]any{"jsonrpc": "2.0", "id": c.nextID, "method": method}
	if params != nil {
		body["params"] = params
	}
	b, err := json.Marshal(body)
	require.NoError(c.t, err)
	c.send(string(b))
	return c.nextID
}

func (c *pipeClient) notify(method string, params any) {
	body := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		body["params"] = params
	}
	b, err := json.Marshal(body)
	require.NoError(c.t, err)
	c.send(string(b))
}

// next returns the next message the server wrote, in order.
func (c *pipeClient) next() msg {
	c.t.Helper()
	c.mu.Lock()
	if len(c.held) > 0 {
		m := c.held[0]
		c.held = c.held[1:]
		c.mu.Unlock()
		return m
	}
	c.mu.Unlock()
	select {
	case m, ok := <-c.msgs:
		require.True(c.t, ok, "server output ended")
		return m
	case <-time.After(guard):
		c.t.Fatal("no message from the server")
	}
	return msg{}
}

// waitFor returns the first message matching pred, holding back the others.
func (c *pipeClient) waitFor(pred func(msg) bool) msg {
	c.t.Helper()
	c.mu.Lock()
	for i, m := range c.held {
		if pred(m) {
			c.held = append(c.held[:i:i], c.held[i+1:]...)
			c.mu.Unlock()
			return m
		}
	}
	c.mu.Unlock()
	for {
		select {
		case m, ok := <-c.msgs:
			require.True(c.t, ok, "server output ended")
			if pred(m) {
				return m
			}
			c.mu.Lock()
			c.held = append(c.held, m)
			c.mu.Unlock()
		case <-time.After(guard):
			c.t.Fatal("expected message never came")
		}
	}
}

func (c *pipeClient) response(id int) msg {
	want := fmt.Sprint(id)
	return c.waitFor(func(m msg) bool { return string(m.ID) == want && m.Method == "" })
}

// call sends a request and waits for its response.
func (c *pipeClient) call(method string, params any) msg {
	c.t.Helper()
	return c.response(c.request(method, params))
}

func (c *pipeClient) initialize() {
	c.t.Helper()
	m := c.call("initialize", map[string]any{"protocolVersion": ProtocolVersion, "clientInfo": map[string]any{"name": "test"}})
	require.Nil(c.t, m.Error)
}

// alive proves the connection still works: a ping is answered {}.
func (c *pipeClient) alive() {
	c.t.Helper()
	m := c.call("ping", nil)
	require.Nil(c.t, m.Error, "ping after the step failed")
	require.JSONEq(c.t, `{}`, string(m.Result))
}

func (c *pipeClient) exitCode() int {
	c.t.Helper()
	select {
	case code := <-c.done:
		c.done <- code
		return code
	case <-time.After(guard):
		c.t.Fatal("server did not exit")
	}
	return -1
}

// requireError checks a message is an error with code and, if given, a
// message containing substr.
func requireError(t *testing.T, m msg, code int64, substr string) {
	t.Helper()
	require.NotNil(t, m.Error, "want error %d, got result %s", code, m.Result)
	require.Equal(t, code, m.Error.Code, m.Error.Message)
	if substr != "" {
		require.Contains(t, m.Error.Message, substr)
	}
}

func ioPipe() (*io.PipeReader, *io.PipeWriter) { return io.Pipe() }

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

func waitCode(t *testing.T, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(guard):
		t.Fatal("Serve did not return")
	}
	return -1
}

// alive2 is alive for after shutdown: the connection answers, with -32600.
func (c *pipeClient) alive2() {
	c.t.Helper()
	requireError(c.t, c.call("ping", nil), -32600, "shutting down")
}
