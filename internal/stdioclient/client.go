// Package stdioclient is a small JSON-RPC 2.0 client for a server spawned
// on pipes, speaking LSP Content-Length or NDJSON framing. The server's
// tests, the rpcload benchmark and the multi-server chaos run
// (internal/chaos) use it; it is deliberately independent of package rpc,
// so it checks the server from the outside.
package stdioclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	json "github.com/goccy/go-json"
)

// Message is any message the server sends.
type Message struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Method string          `json:"method,omitempty"`
	Params json.RawMessage `json:"params,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a JSON-RPC error object.
type Error struct {
	Code    int64           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message) }

// Client matches responses to requests by id. It is safe for concurrent
// use.
type Client struct {
	ndjson bool
	wmu    sync.Mutex
	w      io.Writer
	wbuf   []byte

	mu      sync.Mutex
	nextID  uint64
	pending map[string]chan Message
	err     error

	notes     chan Message
	unmatched chan Message
	done      chan struct{}
}

// New starts reading r. framing is "lsp" or "ndjson".
func New(r io.Reader, w io.Writer, framing string) *Client {
	c := &Client{
		ndjson:    framing == "ndjson",
		w:         w,
		pending:   map[string]chan Message{},
		notes:     make(chan Message, 256),
		unmatched: make(chan Message, 256),
		done:      make(chan struct{}),
	}
	go c.read(bufio.NewReaderSize(r, 64<<10))
	return c
}

// Notifications delivers server→host notifications.
func (c *Client) Notifications() <-chan Message { return c.notes }

// Unmatched delivers responses whose id matches no pending call, such as
// the id:null answers to malformed input.
func (c *Client) Unmatched() <-chan Message { return c.unmatched }

// Done is closed when the server's output ends.
func (c *Client) Done() <-chan struct{} { return c.done }

// Go sends a request and returns the channel its response arrives on.
func (c *Client) Go(method string, params any) (<-chan Message, error) {
	c.mu.Lock()
	c.nextID++
	id := strconv.FormatUint(c.nextID, 10)
	ch := make(chan Message, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	body, err := encode(id, method, params)
	if err == nil {
		err = c.SendFrame(body)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// ID returns the id the last Go call used.
func (c *Client) ID() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nextID
}

// Call sends a request and waits for its response. A JSON-RPC error comes
// back as the Message's Error, not as err.
func (c *Client) Call(ctx context.Context, method string, params any) (Message, error) {
	ch, err := c.Go(method, params)
	if err != nil {
		return Message{}, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return Message{}, c.closedErr()
		}
		return m, nil
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// Notify sends a notification.
func (c *Client) Notify(method string, params any) error {
	body, err := encode("", method, params)
	if err != nil {
		return err
	}
	return c.SendFrame(body)
}

// SendFrame frames body and writes it in one write.
func (c *Client) SendFrame(body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = c.wbuf[:0]
	if c.ndjson {
		c.wbuf = append(append(c.wbuf, body...), '\n')
	} else {
		c.wbuf = append(c.wbuf, "Content-Length: "...)
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(body)), 10)
		c.wbuf = append(append(c.wbuf, "\r\n\r\n"...), body...)
	}
	_, err := c.w.Write(c.wbuf)
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil
	}
	return err
}

func encode(id, method string, params any) ([]byte, error) {
	type request struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id,omitempty"`
		Method  string          `json:"method"`
		Params  any             `json:"params,omitempty"`
	}
	r := request{JSONRPC: "2.0", Method: method, Params: params}
	if id != "" {
		r.ID = json.RawMessage(id)
	}
	return json.Marshal(r)
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return io.EOF
}

func (c *Client) read(r *bufio.Reader) {
	var err error
	defer func() {
		c.mu.Lock()
		c.err = err
		for id, ch := range c.pending {
			close(ch)
			delete(c.pending, id)
		}
		c.mu.Unlock()
		close(c.done)
	}()
	for {
		var body []byte
		body, err = c.readFrame(r)
		if err != nil {
			return
		}
		var m Message
		if err = json.Unmarshal(body, &m); err != nil {
			err = fmt.Errorf("server wrote a frame that is not a JSON message: %w", err)
			return
		}
		if m.Method != "" {
			c.notes <- m
			continue
		}
		c.mu.Lock()
		ch := c.pending[string(m.ID)]
		delete(c.pending, string(m.ID))
		c.mu.Unlock()
		if ch == nil {
			c.unmatched <- m
			continue
		}
		ch <- m
	}
}

func (c *Client) readFrame(r *bufio.Reader) ([]byte, error) {
	if c.ndjson {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return nil, err
		}
		return line, nil
	}
	n := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", line)
		}
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			if n, err = strconv.Atoi(strings.TrimSpace(value)); err != nil {
				return nil, err
			}
		}
	}
	if n < 0 {
		return nil, errors.New("frame without Content-Length")
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return body, err
}
