package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/sourcegraph/jsonrpc2"
)

// ProtocolVersion is the newest version of the acctpool protocol this
// server speaks. initialize echoes the host's version when it is one of
// SupportedProtocolVersions, uses this one when the host names none (LSP
// hosts do not), and answers with this one otherwise; the host decides
// whether it can go on (the MCP rule).
const ProtocolVersion = "1.0"

// SupportedProtocolVersions lists every protocol version the server speaks.
var SupportedProtocolVersions = []string{ProtocolVersion}

// ServerName is reported as serverInfo.name.
const ServerName = "acctpool"

// The lifecycle states, in order (LSP's, with MCP's EOF rule on top):
//
//  1. new: only initialize (and exit) are answered; any other request gets
//     -32002 and notifications are dropped.
//  2. ready: the initialize result has been sent; every request is
//     answered, whether or not the host ever sends `initialized`.
//  3. initialized (a flag on ready): notifications flow and the background
//     passes run.
//  4. shutdown: requests get -32600; background work has stopped. The
//     shutdown answer is sent once every earlier request is answered.
//  5. exit: Serve returns 0 if shutdown came first, else 1. After shutdown,
//     exit (and EOF on stdin) first waits, at most DrainTimeout, for the
//     shutdown answer to be written; exit without shutdown cancels what is
//     still running. EOF on stdin, SIGTERM and the death of the initialize
//     processId also end Serve.
const (
	stateNew = iota
	stateReady
	stateShutdown
)

type lifecycle struct {
	mu          sync.Mutex
	state       int
	initialized bool
	bgCancel    context.CancelFunc
}

func (l *lifecycle) get() (state int, initialized bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state, l.initialized
}

// gate says whether a request for method may run in the current state.
func (s *Server) gate(method string) error {
	state, _ := s.life.get()
	switch {
	case method == "exit":
		return nil
	case state == stateNew && method != "initialize":
		return errNotInitialized
	case state != stateNew && method == "initialize":
		return fmt.Errorf("%w: initialize was already called", errInvalidRequest)
	case state == stateShutdown:
		return fmt.Errorf("%w: server is shutting down", errInvalidRequest)
	}
	return nil
}

type clientInfo struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// initializeParams are acctpool's initialize params, which are also LSP's
// InitializeParams: an LSP or vscode-jsonrpc host can send its usual
// {processId, clientInfo, capabilities} as is. protocolVersion (MCP's name)
// and clientInfo are optional; the other LSP members are accepted and
// ignored.
type initializeParams struct {
	ProtocolVersion string      `json:"protocolVersion,omitempty"`
	ClientInfo      *clientInfo `json:"clientInfo,omitempty"`
	ProcessID       *int        `json:"processId"`
	Capabilities    any         `json:"capabilities"`

	// LSP members with no meaning here.
	Locale                json.RawMessage `json:"locale,omitempty"`
	RootPath              json.RawMessage `json:"rootPath,omitempty"`
	RootURI               json.RawMessage `json:"rootUri,omitempty"`
	InitializationOptions json.RawMessage `json:"initializationOptions,omitempty"`
	Trace                 json.RawMessage `json:"trace,omitempty"`
	WorkspaceFolders      json.RawMessage `json:"workspaceFolders,omitempty"`
	WorkDoneToken         json.RawMessage `json:"workDoneToken,omitempty"`
}

// unknownClient is the client name logged when initialize has no
// clientInfo.
const unknownClient = "unknown"

func (p *initializeParams) check() error {
	switch {
	case p.ClientInfo != nil && p.ClientInfo.Name == "":
		return required("clientInfo.name")
	case p.ProcessID != nil && *p.ProcessID <= 0:
		return &paramError{Field: "processId", Problem: "must be a positive process id"}
	}
	return nil
}

// negotiate picks the protocol version of the session: the host's when the
// server speaks it, the current one when the host names none, and
// otherwise the newest the server speaks, which the host may refuse by
// ending the session (the MCP rule).
func negotiate(requested string) (version string, supported bool) {
	if requested == "" {
		return ProtocolVersion, true
	}
	for _, v := range SupportedProtocolVersions {
		if v == requested {
			return v, true
		}
	}
	return ProtocolVersion, false
}

type serverInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type capabilities struct {
	Methods       []string `json:"methods"`
	Notifications []string `json:"notifications"`
}

type initializeResult struct {
	ProtocolVersion string       `json:"protocolVersion"`
	ServerInfo      serverInfo   `json:"serverInfo"`
	Capabilities    capabilities `json:"capabilities"`
}

// serverNotifications are the notifications the server may send.
var serverNotifications = []string{"accounts/alert", "accounts/changed", "accounts/mainRefreshed", "quota/changed"}

func initialize(_ context.Context, s *Server, p *initializeParams) (any, error) {
	version, supported := negotiate(p.ProtocolVersion)
	client := clientInfo{Name: unknownClient}
	if p.ClientInfo != nil {
		client = *p.ClientInfo
	}
	if !supported {
		s.log.Warn("initialize: the host asked for a protocol version this server does not speak; answering with the newest it does",
			"requested", p.ProtocolVersion, "answered", version, "supported", SupportedProtocolVersions)
	}
	s.life.mu.Lock()
	s.life.state = stateReady
	s.life.mu.Unlock()
	if p.ProcessID != nil {
		s.watchParent(*p.ProcessID)
	}
	s.log.Info("initialize", "client", client.Name, "clientVersion", client.Version, "protocolVersion", version)
	return initializeResult{
		ProtocolVersion: version,
		ServerInfo:      serverInfo{Name: ServerName, Version: s.opts.Version},
		Capabilities:    capabilities{Methods: s.Methods(), Notifications: serverNotifications},
	}, nil
}

// initialized starts notifications and, with a real clock, the background
// passes. Only the first `initialized` after initialize counts.
func (s *Server) initialized() {
	s.life.mu.Lock()
	defer s.life.mu.Unlock()
	if s.life.state != stateReady || s.life.initialized {
		return
	}
	s.life.initialized = true
	ctx, cancel := context.WithCancel(s.ctx)
	s.life.bgCancel = cancel
	s.goBackground(func() {
		s.opts.Notifier.run(ctx, func(method string, params any) error {
			return s.conn.Load().Notify(context.Background(), method, params)
		})
	})
	if s.opts.ManualClock == nil {
		s.goBackground(func() { s.opts.passSchedule().Run(ctx, s.pass) })
	}
}

// shutdownParams checks the params of shutdown; Server.shutdown does the
// work, since its answer must wait.
func shutdownParams(context.Context, *Server, *noParams) (any, error) { return nil, nil }

// shutdown refuses every later request, stops the background work, and
// answers once every request received before it has been answered, so a
// host that waits for the shutdown answer has all the others. It runs on
// the read goroutine but waits off it, so $/cancelRequest still reaches
// the requests it waits for.
func (s *Server) shutdown(ctx context.Context, id jsonrpc2.ID, m method, params []byte) {
	if _, err := s.invoke(ctx, "shutdown", m, params); err != nil {
		s.sendResult(id, nil, err)
		return
	}
	s.life.mu.Lock()
	s.life.state = stateShutdown
	s.life.mu.Unlock()
	s.stopBackground()
	s.goBackground(func() {
		s.inflight.wait()
		s.sendResult(id, nil, nil)
		close(s.drained)
	})
}

// awaitDrain waits, after shutdown, until the shutdown answer (and so every
// answer before it) is written, until ctx ends, or at most
// Options.DrainTimeout, so that a request stuck for good cannot keep the
// process alive. Without shutdown it returns at once.
func (s *Server) awaitDrain(ctx context.Context) {
	if state, _ := s.life.get(); state != stateShutdown {
		return
	}
	t := time.NewTimer(s.opts.DrainTimeout)
	defer t.Stop()
	select {
	case <-s.drained:
	case <-ctx.Done():
	case <-t.C:
		s.log.Warn("exiting before every request was answered", "waited", s.opts.DrainTimeout)
	}
}

// exit ends Serve with the LSP exit code.
func (s *Server) exit() {
	state, _ := s.life.get()
	code := 1
	if state == stateShutdown {
		code = 0
	}
	select {
	case s.exitCh <- code:
	default:
	}
}

// stopBackground stops notifications and passes; Serve waits for them.
func (s *Server) stopBackground() {
	s.life.mu.Lock()
	defer s.life.mu.Unlock()
	if s.life.bgCancel != nil {
		s.life.bgCancel()
	}
}

func (s *Server) goBackground(fn func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		fn()
	}()
}

// watchParent ends Serve when process pid is gone: signal 0 fails with
// ESRCH, or, when pid was our parent, we have been re-parented (which also
// catches a parent that died but was not reaped yet).
func (s *Server) watchParent(pid int) {
	wasParent := os.Getppid() == pid
	s.goBackground(func() {
		t := time.NewTicker(s.opts.ParentPoll)
		defer t.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			if (wasParent && os.Getppid() != pid) || !processAlive(pid) {
				s.log.Info("host process is gone; exiting", "processId", pid)
				select {
				case s.exitCh <- 0:
				default:
				}
				return
			}
		}
	})
}
