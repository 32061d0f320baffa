package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/sourcegraph/jsonrpc2"
)

// handlerFunc is one method: decode params, call the engine, return the
// result to encode. It never builds wire errors; toWireError does.
type handlerFunc func(ctx context.Context, s *Server, params []byte) (any, error)

// method is one row of the method table.
type method struct {
	call handlerFunc
	// async methods may wait on the network, a lock file or a plugin: they
	// run on their own goroutine with a context $/cancelRequest can
	// cancel. The others are cheap and answered inline, on the read
	// goroutine, in order.
	async bool
	// try, when set on an async method, is its no-wait form: it runs
	// inline on the read goroutine and either answers or hands back the
	// call to run on the async lane (see tryWith).
	try tryFunc
}

// tryFunc is the no-wait form of an async method. It answers (res, err)
// when it can without waiting; otherwise it returns a non-nil full, the
// call to run on the async lane with the params already decoded.
type tryFunc func(s *Server, params []byte) (res any, err error, full func(ctx context.Context) (any, error))

// tryWith adapts a typed no-wait handler and its full form to a tryFunc:
// params are decoded and checked once (an invalid request is answered
// inline), try answers when it can (ok), and otherwise full runs on the
// async lane with the same params.
func tryWith[P any](try func(s *Server, p *P) (res any, err error, ok bool), full func(ctx context.Context, s *Server, p *P) (any, error)) tryFunc {
	return func(s *Server, raw []byte) (any, error, func(context.Context) (any, error)) {
		p, err := decodeChecked[P](raw)
		if err != nil {
			return nil, err, nil
		}
		if res, err, ok := try(s, p); ok {
			return res, err, nil
		}
		return nil, nil, func(ctx context.Context) (any, error) { return full(ctx, s, p) }
	}
}

func methodNames(table map[string]method) []string {
	names := make([]string, 0, len(table))
	for name := range table {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Handle implements jsonrpc2.Handler. It runs on the connection's read
// goroutine, so it must not block: it answers lifecycle, cancellation and
// cheap methods inline and hands the rest to a goroutine each. An async
// method with a no-wait form (route/select, route/report) is answered inline when that
// form can answer without waiting, and handed off only when it cannot:
// a worker on another thread costs more than an answer from memory.
// Either way a request is answered once; an inline answer is written
// before the next message is read, so it cannot be cancelled (there is
// nothing left to cancel) and it never overtakes an earlier inline one.
func (s *Server) Handle(ctx context.Context, conn *jsonrpc2.Conn, req *jsonrpc2.Request) {
	s.conn.CompareAndSwap(nil, conn)
	if req.Notif {
		s.handleNotification(req)
		return
	}
	if req.Method == "exit" {
		s.sendResult(req.ID, nil, nil)
		s.exit()
		return
	}
	if err := s.gate(req.Method); err != nil {
		s.sendResult(req.ID, nil, err)
		return
	}
	m, ok := s.methods[req.Method]
	if !ok {
		s.sendResult(req.ID, nil, fmt.Errorf("%w: %s", errMethodNotFound, req.Method))
		return
	}
	params := rawParams(req)
	if req.Method == "shutdown" {
		s.shutdown(ctx, req.ID, m, params)
		return
	}
	if !m.async {
		res, err := s.invoke(ctx, req.Method, m, params)
		s.sendResult(req.ID, res, err)
		return
	}
	if s.inflight.running(req.ID) {
		s.sendResult(req.ID, nil, errDuplicateID(req.ID))
		return
	}
	call := func(ctx context.Context) (any, error) { return m.call(ctx, s, params) }
	if m.try != nil {
		res, err, full := s.tryInline(req.Method, m.try, params)
		if full == nil {
			s.counts.inline.Add(1)
			s.sendResult(req.ID, res, err)
			return
		}
		call = full
	}
	rctx, ok := s.inflight.start(s.ctx, req.ID)
	if !ok {
		s.sendResult(req.ID, nil, errDuplicateID(req.ID))
		return
	}
	s.counts.async.Add(1)
	done := make(chan struct{})
	s.workers.run(func() {
		defer close(done)
		defer s.inflight.done()
		res, err := s.invokeCall(rctx, req.Method, call)
		if s.inflight.finish(req.ID) {
			s.sendResult(req.ID, res, err)
		}
	})
	if !s.stream.inputPending() {
		s.linger(done)
	}
}

// lingerAsync is how long the read goroutine waits for an async request
// before it reads on. Most async calls (a route/select that needs no
// refresh) finish well within it, and waiting keeps them on this thread:
// handing every call to another thread and back costs more than the call
// (on a 2-core VM it doubled the round trip). A call that takes longer
// simply continues in the background. It also bounds how long a
// $/cancelRequest can sit behind one async request. When the next
// message has already arrived the read goroutine does not wait at all:
// the worker runs while it reads on.
const lingerAsync = 500 * time.Microsecond

// lingerSpin is the first part of the linger, spent yielding rather than
// parked. A fast call finishes inside it, and then closing done wakes no
// parked goroutine: waking one makes the runtime wake a second OS thread,
// which on a busy VM costs more than the call itself. Past it the read
// goroutine parks, so a slow call costs no CPU while it waits.
const lingerSpin = 50 * time.Microsecond

// linger waits for done or lingerAsync, whichever comes first: first by
// yielding for up to lingerSpin, then parked on a timer. Only the read
// goroutine calls it, so one timer serves every request.
func (s *Server) linger(done <-chan struct{}) {
	start := time.Now()
	for {
		select {
		case <-done:
			return
		default:
		}
		if time.Since(start) >= lingerSpin {
			break
		}
		runtime.Gosched()
	}
	if s.lingerTimer == nil {
		s.lingerTimer = time.NewTimer(lingerAsync - lingerSpin)
	} else {
		s.lingerTimer.Reset(lingerAsync - lingerSpin)
	}
	select {
	case <-done:
	case <-s.lingerTimer.C:
	}
	s.lingerTimer.Stop()
}

// workerPool runs async requests on goroutines whose stacks have already
// grown to what decoding, the engine and encoding need, which saves a
// round of stack copies per request. When every worker is busy a fresh
// goroutine takes the job, so slow calls never queue behind each other.
type workerPool struct {
	jobs chan func()
	wg   sync.WaitGroup
}

func (p *workerPool) start(n int) {
	p.jobs = make(chan func())
	for range n {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for job := range p.jobs {
				job()
			}
		}()
	}
}

func (p *workerPool) run(job func()) {
	select {
	case p.jobs <- job:
	default:
		go job()
	}
}

// stop ends the workers once the jobs given to them have returned.
func (p *workerPool) stop() {
	close(p.jobs)
	p.wg.Wait()
}

func (s *Server) handleNotification(req *jsonrpc2.Request) {
	switch req.Method {
	case "exit":
		s.exit()
	case "initialized", "notifications/initialized":
		s.initialized()
	case "$/cancelRequest", "notifications/cancelled":
		var p cancelParams
		if err := gojson.Unmarshal(rawParams(req), &p); err != nil {
			s.log.Debug("bad cancel notification", "err", err)
			return
		}
		id := p.ID
		if id == nil {
			id = p.RequestID
		}
		if id != nil && s.inflight.cancel(*id) {
			s.sendResult(*id, nil, errCancelled)
		}
	default:
		s.log.Debug("notification ignored", "method", req.Method)
	}
}

// invoke runs one handler and turns a panic into an internal error.
func (s *Server) invoke(ctx context.Context, name string, m method, params []byte) (res any, err error) {
	return s.invokeCall(ctx, name, func(ctx context.Context) (any, error) { return m.call(ctx, s, params) })
}

// invokeCall runs call and turns a panic into an internal error.
func (s *Server) invokeCall(ctx context.Context, name string, call func(context.Context) (any, error)) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, s.panicked(name, r)
		}
	}()
	return call(ctx)
}

// tryInline runs a method's no-wait form, turning a panic into an
// internal error answered inline.
func (s *Server) tryInline(name string, try tryFunc, params []byte) (res any, err error, full func(context.Context) (any, error)) {
	defer func() {
		if r := recover(); r != nil {
			res, err, full = nil, s.panicked(name, r), nil
		}
	}()
	return try(s, params)
}

func (s *Server) panicked(name string, r any) error {
	s.log.Error("handler panicked", "method", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return fmt.Errorf("%w: %s failed unexpectedly", errInternal, name)
}

func errDuplicateID(id jsonrpc2.ID) error {
	return fmt.Errorf("%w: a request with id %s is still running", errInvalidRequest, id)
}

// laneCounts counts the requests of async methods by the lane that
// answered them: inline (their no-wait form answered on the read
// goroutine) or async (handed to a worker). Tests read them to see which
// lane a call took without timing anything.
type laneCounts struct {
	inline, async atomic.Int64
}

// sendResult writes the response for id. Results are encoded with
// goccy/go-json and handed to the library as raw JSON.
func (s *Server) sendResult(id jsonrpc2.ID, res any, err error) {
	resp := &jsonrpc2.Response{ID: id}
	if err == nil {
		var body []byte
		switch v := res.(type) {
		case nil:
			body = []byte("null")
		case json.RawMessage:
			body = v
		default:
			body, err = gojson.MarshalWithOption(v, gojson.DisableHTMLEscape())
			if err != nil {
				err = fmt.Errorf("%w: encode result: %v", errInternal, err)
			}
		}
		raw := json.RawMessage(body)
		resp.Result = &raw
	}
	if err != nil {
		resp.Result = nil
		resp.Error = toWireError(err)
		s.log.Debug("request failed", "id", id.String(), "code", resp.Error.Code, "err", resp.Error.Message)
	}
	if werr := s.conn.Load().SendResponse(context.Background(), resp); werr != nil && !errors.Is(werr, jsonrpc2.ErrClosed) {
		s.log.Warn("write response", "id", id.String(), "err", werr)
	}
}

func rawParams(req *jsonrpc2.Request) []byte {
	if req.Params == nil {
		return nil
	}
	return *req.Params
}

// checker is implemented by params that have required fields or ranges.
type checker interface{ check() error }

// with adapts a typed handler to the table: it decodes params into a fresh
// P, strictly, runs P's check, and calls fn.
func with[P any](fn func(ctx context.Context, s *Server, p *P) (any, error)) handlerFunc {
	return func(ctx context.Context, s *Server, raw []byte) (any, error) {
		p, err := decodeChecked[P](raw)
		if err != nil {
			return nil, err
		}
		return fn(ctx, s, p)
	}
}

// decodeChecked decodes raw params into a fresh P and runs P's check. Its
// errors are all invalid params.
func decodeChecked[P any](raw []byte) (*P, error) {
	p := new(P)
	if err := decodeParams(raw, p); err != nil {
		return nil, err
	}
	if c, ok := any(p).(checker); ok {
		if err := c.check(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// decodeParams decodes a params object into v with goccy/go-json, refusing
// unknown fields. Absent and null params decode as {}.
func decodeParams(raw []byte, v any) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
		return nil
	}
	if raw[0] != '{' {
		return &paramError{Problem: "params must be an object"}
	}
	dec := gojson.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return paramErrorFrom(err)
	}
	return nil
}

func paramErrorFrom(err error) error {
	var te *gojson.UnmarshalTypeError
	if errors.As(err, &te) {
		return &paramError{Field: te.Field, Problem: fmt.Sprintf("must be %s, not %s", jsonKind(te.Type), te.Value)}
	}
	if _, name, ok := strings.Cut(err.Error(), "unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return &paramError{Field: name, Problem: "is not a known field"}
	}
	return &paramError{Problem: err.Error()}
}

// jsonKind names a Go type the way a host thinks of it.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return t.String()
}

func required(field string) error {
	return &paramError{Field: field, Problem: "is required"}
}
