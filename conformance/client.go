package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// RPCError is a JSON-RPC error response.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Error implements error.
func (e *RPCError) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// client speaks JSON-RPC 2.0 with LSP Content-Length framing over a pipe
// pair. One goroutine reads; calls wait for their id.
type client struct {
	w  io.Writer
	wm sync.Mutex

	mu      sync.Mutex
	nextID  int
	pending map[int]chan response
	notes   []notification
	readErr error
	done    chan struct{}
}

type response struct {
	Result json.RawMessage
	Err    *RPCError
}

type notification struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type wireMsg struct {
	JSONRPC string           `json:"jsonrpc"`
	ID      *json.RawMessage `json:"id,omitempty"`
	Method  string           `json:"method,omitempty"`
	Params  json.RawMessage  `json:"params,omitempty"`
	Result  json.RawMessage  `json:"result,omitempty"`
	Error   *RPCError        `json:"error,omitempty"`
}

func newClient(r io.Reader, w io.Writer) *client {
	c := &client{w: w, pending: map[int]chan response{}, done: make(chan struct{})}
	go c.read(bufio.NewReader(r))
	return c
}

func (c *client) read(br *bufio.Reader) {
	defer close(c.done)
	tp := textproto.NewReader(br)
	for {
		hdr, err := tp.ReadMIMEHeader()
		if err != nil {
			c.fail(fmt.Errorf("read header: %w", err))
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(hdr.Get("Content-Length")))
		if err != nil || n < 0 {
			c.fail(fmt.Errorf("bad Content-Length %q", hdr.Get("Content-Length")))
			return
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			c.fail(fmt.Errorf("read body: %w", err))
			return
		}
		var m wireMsg
		if err := json.Unmarshal(body, &m); err != nil {
			c.fail(fmt.Errorf("server sent invalid JSON: %w", err))
			return
		}
		if m.ID == nil {
			c.mu.Lock()
			c.notes = append(c.notes, notification{m.Method, m.Params})
			c.mu.Unlock()
			continue
		}
		id, err := strconv.Atoi(string(*m.ID))
		if err != nil {
			continue // a server→client request; this host answers none
		}
		c.mu.Lock()
		ch := c.pending[id]
		delete(c.pending, id)
		c.mu.Unlock()
		if ch != nil {
			ch <- response{m.Result, m.Error}
		}
	}
}

func (c *client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(err, io.EOF) {
		err = fmt.Errorf("server closed stdout: %w", err)
	}
	c.readErr = err
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
}

func (c *client) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Length: %d\r\n\r\n", len(b))
	buf.Write(b)
	c.wm.Lock()
	defer c.wm.Unlock()
	_, err = c.w.Write(buf.Bytes())
	return err
}

// call sends a request and waits for its response.
func (c *client) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.readErr != nil {
		err := c.readErr
		c.mu.Unlock()
		return nil, err
	}
	c.nextID++
	id := c.nextID
	ch := make(chan response, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	if params == nil {
		params = map[string]any{}
	}
	if err := c.write(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params}); err != nil {
		return nil, fmt.Errorf("send %s: %w", method, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.readErr
			c.mu.Unlock()
			return nil, fmt.Errorf("%s: no response: %w", method, err)
		}
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// notify sends a notification.
func (c *client) notify(method string, params any) error {
	m := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		m["params"] = params
	}
	return c.write(m)
}
