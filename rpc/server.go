package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sourcegraph/jsonrpc2"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
)

// Options configure a [Server]. Zero values mean the defaults.
type Options struct {
	// Engine is required: every method but the lifecycle ones calls it.
	Engine *core.Engine
	// Notifier, when set, is drained into server→host notifications after
	// the host's `initialized`. Give its Event method to the engine.
	Notifier *Notifier
	// Plugins answers plugins/list and plugins/reload. Nil means only the
	// built-in classifier is in use: the list is empty and reload is a
	// no-op.
	Plugins Plugins
	// ManualClock, when set, enables test/clock/set and test/clock/advance
	// and turns the background timers off (`--clock manual`).
	ManualClock *core.ManualClock
	// Framing defaults to FramingLSP.
	Framing Framing
	// MaxFrameBytes defaults to DefaultMaxFrameBytes.
	MaxFrameBytes int
	// Logger defaults to discarding. It must not write to the protocol
	// stream.
	Logger *slog.Logger
	// Version is reported as serverInfo.version.
	Version string
	// PassInterval and PassJitter time the background refresh and quota
	// passes (core.PassSchedule: PassInterval plus a jitter drawn once
	// from PassJitter; 60 s and 60 s by default, as upstream; a negative
	// PassJitter is none).
	PassInterval time.Duration
	PassJitter   time.Duration
	// ParentPoll is how often the processId given in initialize is checked;
	// 1 s by default.
	ParentPoll time.Duration
	// DrainTimeout bounds how long exit (or EOF) after shutdown waits for
	// the requests still running to be answered; 30 s by default. What is
	// still running then is cancelled.
	DrainTimeout time.Duration
}

// Server is the JSON-RPC 2.0 server over one byte stream (stdin/stdout):
// the hardened framing, the lifecycle, dispatch to the engine, cancellation
// and notifications.
//
// # Notes
//
// A Server serves one connection: Serve may be called once.
type Server struct {
	opts    Options
	eng     *core.Engine
	log     *slog.Logger
	methods map[string]method

	conn     atomic.Pointer[jsonrpc2.Conn] // set by Serve and by the first Handle, whichever runs first
	stream   *stream
	inflight inflight
	life     lifecycle

	ctx     context.Context // ends when Serve returns; parent of async requests
	cancel  context.CancelFunc
	bg      sync.WaitGroup // background goroutines: passes, notifier, parent watch
	exitCh  chan int
	drained chan struct{} // closed once the shutdown answer is written
	served  atomic.Bool

	workers     workerPool
	counts      laneCounts
	lingerTimer *time.Timer // read goroutine only

	// pass runs one background pass; tests replace it.
	pass func(context.Context)
}

// New checks opts and returns a server ready to Serve.
func New(opts Options) (*Server, error) {
	if opts.Engine == nil {
		return nil, errors.New("rpc: Options.Engine is required")
	}
	if opts.Framing == "" {
		opts.Framing = FramingLSP
	}
	if _, err := ParseFraming(string(opts.Framing)); err != nil {
		return nil, err
	}
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ParentPoll <= 0 {
		opts.ParentPoll = time.Second
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	if opts.Notifier == nil {
		opts.Notifier = new(Notifier)
	}
	s := &Server{opts: opts, eng: opts.Engine, log: opts.Logger, exitCh: make(chan int, 1), drained: make(chan struct{})}
	s.methods = methodTable(opts.ManualClock != nil)
	s.pass = s.eng.RunPasses
	return s, nil
}

// Methods returns the names of the request methods this server answers,
// sorted; initialize lists them as capabilities.
func (s *Server) Methods() []string { return methodNames(s.methods) }

// Serve reads requests from in and writes responses to out until the host
// sends `exit`, in reaches EOF, ctx ends, or the processId given in
// initialize dies. It returns the process exit code: after `exit`, 0 if
// `shutdown` came first and 1 otherwise; 0 on EOF, cancellation and parent
// death; 1 when reading in fails. If in is an io.Closer it is closed on the
// way out so the read goroutine ends.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) int {
	if !s.served.CompareAndSwap(false, true) {
		s.log.Error("Serve called twice")
		return 1
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.cancel()
	var readErr atomic.Value
	s.workers.start(runtime.GOMAXPROCS(0))
	s.stream = newStream(s.opts.Framing, in, out, s.opts.MaxFrameBytes)
	s.stream.onReadErr = func(err error) {
		readErr.Store(err)
		// After shutdown the host may close stdin at once: keep the
		// connection open until the answers owed are written.
		s.awaitDrain(s.ctx)
	}
	conn := jsonrpc2.NewConn(ctx, s.stream, s, jsonrpc2.SetLogger(slogPrinter{s.log}))
	s.conn.CompareAndSwap(nil, conn)

	code := 0
	select {
	case code = <-s.exitCh:
		s.log.Debug("exit requested", "code", code)
		s.awaitDrain(ctx)
	case <-conn.DisconnectNotify():
		if err, _ := readErr.Load().(error); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && ctx.Err() == nil {
			s.log.Error("read failed", "err", err)
			code = 1
		} else {
			s.log.Debug("input closed")
		}
	case <-ctx.Done():
		s.log.Debug("stopping", "cause", context.Cause(ctx))
	}
	s.stopBackground()
	s.inflight.cancelAll()
	s.inflight.wait()
	s.workers.stop()
	s.cancel()
	s.bg.Wait()
	_ = conn.Close()
	return code
}

// slogPrinter routes the library's own log lines (protocol errors, stray
// responses) to slog at debug level.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Printf(format string, v ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("jsonrpc2", "msg", secret.Redact(fmt.Sprintf(format, v...)))
	}
}

// passSchedule is the core schedule of the background passes.
func (o *Options) passSchedule() core.PassSchedule {
	return core.PassSchedule{Interval: o.PassInterval, Jitter: o.PassJitter}
}
