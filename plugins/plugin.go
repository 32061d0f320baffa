package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/hostfuncs"
	"github.com/acctpool/acctpool/plugins/internal/stackguard"
)

// Circuit breaker settings: after breakerFailures consecutive faults a
// plugin is skipped for breakerCooldown, then one call probes it.
const (
	breakerFailures = 5
	breakerCooldown = time.Minute
)

// memoryGrowthFactor: an instance whose linear memory exceeds this many
// times its post-initialisation size after a call is discarded.
const memoryGrowthFactor = 4

// plugin is one loaded module and its pool of instances.
//
// Lifecycle, each step closing what the earlier ones made on failure:
//
//  1. read the manifest (strict decode, limits checked against the host
//     maxima) — done by [ParseManifest] before a plugin exists;
//  2. read the wasm and verify its sha256 before anything parses it,
//     then rewrite it to bound its call stack (stackguard);
//  3. create the plugin's own Runtime (memory cap, CloseOnContextDone,
//     shared compilation cache) and link env and WASI into it;
//  4. compile with parallel workers;
//  5. validate the ABI on the compiled module: no guest code has run yet;
//  6. instantiate the first pooled instance, _initialize under the init
//     deadline;
//  7. serve: at most poolSize instances, one wasm call per classification;
//  8. close: the Runtime, and with it every instance.
type plugin struct {
	m      Manifest
	limits Limits
	log    *slog.Logger

	rt       wazero.Runtime
	compiled wazero.CompiledModule

	// slots bounds the live instances; idle holds the free ones.
	slots chan struct{}
	idle  chan *instance

	now func() time.Time
	// known returns the secrets to redact from what _initialize emits
	// (the host's Options.KnownSecrets).
	known func(context.Context) []secret.Secret

	calls  atomic.Int64
	mu     sync.Mutex // guards the fields below
	faults map[FaultKind]int64
	last   string
	// consecutive faults and, when the breaker is open, until when.
	streak    int
	openUntil time.Time
}

// instance is one instantiated module with its cached exports.
type instance struct {
	mod      api.Module
	mem      api.Memory
	alloc    api.Function
	classify api.Function
	// bufPtr and bufCap: the guest buffer from the last errclass_alloc.
	bufPtr, bufCap uint32
	// baseSize is the memory size after _initialize.
	baseSize uint32
	calls    int
	input    []byte
	stack    [2]uint64
	log      hostfuncs.CallLog
	out      *tailWriter
	// stackBytes is the stack guard's counter (nil for a module without
	// functions of its own).
	stackBytes api.Global
	// red redacts what the guest emits during a call (log lines, the
	// output tail) with the call's known secrets; log holds red.redact.
	red *redactor
}

// redactor scrubs guest output with secret.Redact and the secrets known
// to the call in progress.
type redactor struct {
	known []secret.Secret
}

func (r *redactor) redact(s string) string { return secret.Redact(s, r.known...) }

// loadPlugin runs lifecycle steps 2 to 6 for m.
func loadPlugin(ctx context.Context, m Manifest, cache wazero.CompilationCache, log *slog.Logger, poolSize int, now func() time.Time, known func(context.Context) []secret.Secret) (_ *plugin, err error) {
	limits, err := m.Limits.effective()
	if err != nil {
		return nil, err
	}
	data, err := readWasm(m.Wasm, m.SHA256)
	if err != nil {
		return nil, err
	}
	if data, err = guardStack(data); err != nil {
		return nil, err
	}
	p := &plugin{
		m:      m,
		limits: limits,
		log:    log,
		slots:  make(chan struct{}, poolSize),
		idle:   make(chan *instance, poolSize),
		now:    now,
		known:  known,
		faults: map[FaultKind]int64{},
	}
	p.rt = newRuntime(ctx, limits.MemoryPages, cache)
	defer func() {
		if err != nil {
			err = errors.Join(err, closeErr(p.rt.Close(ctx)))
		}
	}()
	if err := hostfuncs.Instantiate(ctx, p.rt, m.ID, log); err != nil {
		return nil, err
	}
	if p.compiled, err = compile(ctx, p.rt, data); err != nil {
		return nil, err
	}
	if err := validate(p.compiled, limits.MemoryPages); err != nil {
		return nil, err
	}
	p.slots <- struct{}{}
	in, err := p.instantiate(ctx)
	if err != nil {
		return nil, err
	}
	p.idle <- in
	return p, nil
}

// closeErr keeps a close error on one line, or nil.
func closeErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("close: %s", firstLine(err.Error()))
}

// instantiate starts one instance, running _initialize under the init
// deadline.
func (p *plugin) instantiate(ctx context.Context) (*instance, error) {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.limits.InitTimeout)
	defer cancel()
	in := &instance{out: &tailWriter{}, red: &redactor{known: p.known(ctx)}}
	in.log.SetRedact(in.red.redact)
	defer func() { in.red.known = nil }()
	ictx = hostfuncs.WithCallLog(ictx, &in.log)
	mod, err := p.rt.InstantiateModule(ictx, p.compiled, hostfuncs.SandboxConfig(in.out))
	if err != nil {
		if ictx.Err() != nil {
			return nil, fmt.Errorf("%w: _initialize ran past its %v deadline", ErrPluginTimeout, p.limits.InitTimeout)
		}
		return nil, fmt.Errorf("instantiate: %s%s", firstLine(err.Error()), in.out.suffix(in.red.redact))
	}
	in.mod = mod
	in.mem = mod.Memory()
	in.alloc = mod.ExportedFunction(exportAlloc)
	in.classify = mod.ExportedFunction(exportClassify)
	if in.mem == nil || in.alloc == nil || in.classify == nil {
		_ = mod.Close(ctx)
		return nil, fmt.Errorf("%w: exports missing after instantiation", ErrABI)
	}
	in.stackBytes = mod.ExportedGlobal(stackguard.DepthExport)
	in.baseSize = in.mem.Size()
	return in, nil
}

// acquire returns a free instance, starting one when the pool has room,
// or waits for one until ctx is done.
func (p *plugin) acquire(ctx context.Context) (*instance, FaultKind, error) {
	select {
	case in := <-p.idle:
		return in, "", nil
	default:
	}
	select {
	case in := <-p.idle:
		return in, "", nil
	case p.slots <- struct{}{}:
		in, err := p.instantiate(ctx)
		if err != nil {
			<-p.slots
			return nil, FaultInstantiate, err
		}
		return in, "", nil
	case <-ctx.Done():
		return nil, FaultPoolExhausted, fmt.Errorf("no instance free within %v", p.limits.CallTimeout)
	}
}

// release returns in to the pool, or closes it when it must not serve
// again: after a fault, or once it has served RecycleAfter calls.
func (p *plugin) release(ctx context.Context, in *instance, keep bool) {
	if keep && in.calls < p.limits.RecycleAfter && !in.mod.IsClosed() {
		p.idle <- in
		return
	}
	_ = in.mod.Close(context.WithoutCancel(ctx))
	<-p.slots
}

// allow reports whether the breaker lets a call through.
func (p *plugin) allow() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.openUntil.IsZero() || !p.now().Before(p.openUntil)
}

// succeed records a call that worked and closes the breaker.
func (p *plugin) succeed() {
	p.mu.Lock()
	p.streak, p.openUntil = 0, time.Time{}
	p.mu.Unlock()
}

// fail records a fault, and opens the breaker after enough in a row. The
// message can quote the guest (its output tail, its bytes): it is
// redacted with known before it is logged or kept for lastError.
func (p *plugin) fail(kind FaultKind, err error, known []secret.Secret) {
	msg := secret.Redact(fmt.Sprintf("%s: %s", kind, firstLine(err.Error())), known...)
	p.mu.Lock()
	p.faults[kind]++
	p.last = msg
	p.streak++
	opened := false
	if p.streak >= breakerFailures && (p.openUntil.IsZero() || !p.now().Before(p.openUntil)) {
		p.openUntil = p.now().Add(breakerCooldown)
		opened = true
	}
	p.mu.Unlock()
	if opened {
		p.log.Warn("plugin disabled by its circuit breaker", "plugin", p.m.ID, "faults", breakerFailures, "for", breakerCooldown, "lastError", msg)
	} else {
		p.log.Debug("plugin fault", "plugin", p.m.ID, "kind", kind, "err", msg)
	}
}

// status reports the plugin's counters.
func (p *plugin) status() PluginStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PluginStatus{ID: p.m.ID, Version: p.m.Version, State: StateActive, Calls: p.calls.Load(),
		Faults: make(map[FaultKind]int64, len(p.faults)), LastError: p.last}
	for k, v := range p.faults {
		s.Faults[k] = v
	}
	if !p.openUntil.IsZero() && p.now().Before(p.openUntil) {
		s.State = StateOpen
	}
	return s
}

// close closes the plugin's Runtime, and with it every instance.
func (p *plugin) close(ctx context.Context) error {
	return p.rt.Close(ctx)
}

// tailWriter keeps the last tailSize bytes a guest wrote to stdout or
// stderr, where Go panics and wasi-libc diagnostics land, for error
// reports. It is bounded whatever the guest writes.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 512

// Write implements io.Writer.
func (w *tailWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(b)
	if len(b) > tailSize {
		b = b[len(b)-tailSize:]
	}
	w.buf = append(w.buf, b...)
	if len(w.buf) > tailSize {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-tailSize:]...)
	}
	return n, nil
}

// suffix returns " (guest output: …)" with the sanitised and redacted
// tail, or "". Redaction runs on the whole tail before it is cut, so a
// credential straddling the cut leaves no prefix behind.
func (w *tailWriter) suffix(redact func(string) string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return ""
	}
	s := redact(hostfuncs.Sanitize(w.buf))
	w.buf = w.buf[:0]
	if len(s) > 200 {
		s = "…" + s[len(s)-200:]
	}
	return " (guest output: " + s + ")"
}
