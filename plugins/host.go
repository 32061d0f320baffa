package plugins

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins/internal/abi"
)

// Options configures a [Host]. Zero values mean the defaults.
type Options struct {
	// Manifests are the plugins, in chain order: the first plugin with an
	// opinion decides.
	Manifests []Manifest
	// CacheDir holds compiled native code between runs. "" means
	// os.UserCacheDir()/acctpool/wazero. It is created with mode 0700: the
	// cache is trusted executable input.
	CacheDir string
	// Logger receives plugin log lines and load problems; nil discards.
	Logger *slog.Logger
	// Fallback is the classifier consulted first, whose verdict the guests
	// see and which stands when no plugin has an opinion or one faults.
	// Nil means verdict.Builtin.
	Fallback verdict.Classifier
	// KnownSecrets returns the credentials to scrub verbatim from
	// everything that crosses the plugin boundary, in both directions:
	// the input (body, headers, message) and whatever a plugin emits
	// (log lines, reasons, fault messages with its stdout/stderr tail,
	// lastError). Pass core.Engine.KnownSecrets: the host's main tokens
	// and every stored token. Shape-based redaction (secret.Redact) applies
	// with or without it. Nil means none are known.
	KnownSecrets func(context.Context) []secret.Secret
}

// Plugin states as [PluginStatus] reports them.
const (
	// StateActive: the plugin loaded and is consulted.
	StateActive = "active"
	// StateRejected: the plugin failed to load; Error says why.
	StateRejected = "rejected"
	// StateOpen: the circuit breaker skips the plugin after repeated
	// faults; it is probed again after a cooldown.
	StateOpen = "open"
)

// PluginStatus is one plugin's entry in plugins/list.
type PluginStatus struct {
	// ID is the manifest's id.
	ID string `json:"id"`
	// Version is the manifest's version.
	Version string `json:"version"`
	// State is "active", "rejected" or "open".
	State string `json:"state"`
	// Error is the one-line reason a rejected plugin failed to load.
	Error string `json:"error,omitempty"`
	// Calls counts the classifications the plugin was asked about.
	Calls int64 `json:"calls"`
	// Faults counts faults by kind; each one fell back to the built-in verdict.
	Faults map[FaultKind]int64 `json:"faults"`
	// LastError is the most recent fault, "kind: message".
	LastError string `json:"lastError,omitempty"`
}

// Host runs a chain of classification plugins and implements
// verdict.Classifier with it.
//
// # Notes
//
// A plugin that fails to load never fails the Host: it is listed by
// [Host.Status] as rejected and the rest serve. Every call fault falls
// back to the Fallback verdict and is counted. Host is safe for concurrent
// use; [Host.Reload] swaps a whole new chain in atomically.
type Host struct {
	log      *slog.Logger
	fallback verdict.Classifier
	secrets  func(context.Context) []secret.Secret
	cache    wazero.CompilationCache
	poolSize int
	now      func() time.Time

	cur      atomic.Pointer[chain]
	reloadMu sync.Mutex
	closed   bool // guarded by reloadMu
}

var _ verdict.Classifier = (*Host)(nil)

// chain is one generation of loaded plugins.
type chain struct {
	entries []entry
	// mu is read-held by every call in flight; close takes it to drain them.
	mu     sync.RWMutex
	closed bool
}

type entry struct {
	p        *plugin      // nil when rejected
	rejected PluginStatus // set when p is nil
}

// NewHost loads opts.Manifests, compiling them in parallel, and returns a
// Host serving those that loaded.
//
// # Notes
//
// The error is non-nil only for a problem of the host itself (none today
// but a cancelled ctx); bad plugins are reported in Status instead.
func NewHost(ctx context.Context, opts Options) (*Host, error) {
	h := &Host{
		log:      opts.Logger,
		fallback: opts.Fallback,
		secrets:  opts.KnownSecrets,
		poolSize: max(runtime.GOMAXPROCS(0), 1),
		now:      time.Now,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.fallback == nil {
		h.fallback = verdict.Builtin
	}
	if len(opts.Manifests) > 0 || opts.CacheDir != "" {
		h.cache = openCache(opts.CacheDir, h.log)
	}
	c := h.build(ctx, opts.Manifests)
	if err := ctx.Err(); err != nil {
		_ = h.closeChain(context.WithoutCancel(ctx), c)
		h.closeCache(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("load plugins: %w", err)
	}
	h.cur.Store(c)
	return h, nil
}

// openCache opens the file compilation cache in dir, creating it 0700, or
// returns nil (compile every time) with a warning.
func openCache(dir string, log *slog.Logger) wazero.CompilationCache {
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			log.Warn("plugin compilation cache disabled", "err", err)
			return nil
		}
		dir = filepath.Join(base, "acctpool", "wazero")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Warn("plugin compilation cache disabled", "err", err)
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		log.Warn("plugin compilation cache disabled", "err", err)
		return nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		log.Warn("plugin compilation cache disabled", "err", err)
		return nil
	}
	return cache
}

// build loads the manifests into a new chain, in parallel except that
// manifests naming the same wasm (by sha256) load one after the other:
// wazero 1.12 publishes a module read from the file cache before it is
// ready, and a concurrent compile of the same module in the same
// compilation cache then instantiates it half-made and panics
// (wazero/wazero#2547).
func (h *Host) build(ctx context.Context, ms []Manifest) *chain {
	c := &chain{entries: make([]entry, len(ms))}
	known := h.known(ctx)
	bySum := map[string][]int{}
	var sums []string
	for i, m := range ms {
		sum := strings.ToLower(m.SHA256)
		if _, ok := bySum[sum]; !ok {
			sums = append(sums, sum)
		}
		bySum[sum] = append(bySum[sum], i)
	}
	var wg sync.WaitGroup
	for _, sum := range sums {
		wg.Go(func() {
			for _, i := range bySum[sum] {
				h.buildEntry(ctx, c, i, ms[i], known)
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, e := range c.entries {
		if e.p != nil && seen[e.p.m.ID] {
			_ = e.p.close(ctx)
			c.entries[i] = entry{rejected: PluginStatus{ID: e.p.m.ID, Version: e.p.m.Version, State: StateRejected,
				Error: fmt.Sprintf("plugin %s: duplicate id", e.p.m.ID), Faults: map[FaultKind]int64{}}}
			continue
		}
		if e.p != nil {
			seen[e.p.m.ID] = true
		}
	}
	return c
}

// buildEntry loads ms[i] into c.entries[i], or records its rejection.
func (h *Host) buildEntry(ctx context.Context, c *chain, i int, m Manifest, known []secret.Secret) {
	start := time.Now()
	p, err := h.load(ctx, m)
	if err != nil {
		// A rejection can quote guest output (_initialize's stdout tail):
		// it is redacted like every plugin output.
		msg := secret.Redact(firstLine(err.Error()), known...)
		h.log.Error("plugin rejected", "plugin", m.ID, "err", msg)
		c.entries[i] = entry{rejected: PluginStatus{ID: m.ID, Version: m.Version, State: StateRejected,
			Error: msg, Faults: map[FaultKind]int64{}}}
		return
	}
	h.log.Info("plugin loaded", "plugin", m.ID, "version", m.Version, "took", time.Since(start).Round(time.Millisecond))
	c.entries[i] = entry{p: p}
}

// load runs one plugin's lifecycle up to serving.
func (h *Host) load(ctx context.Context, m Manifest) (*plugin, error) {
	if m.err != nil {
		return nil, m.err
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", m.ID, err)
	}
	p, err := loadPlugin(ctx, m, h.cache, h.log, h.poolSize, h.now, h.known)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", m.ID, err)
	}
	return p, nil
}

// known returns the secrets to redact, or nil.
func (h *Host) known(ctx context.Context) []secret.Secret {
	if h.secrets == nil {
		return nil
	}
	return h.secrets(ctx)
}

// Classify implements verdict.Classifier: it asks the plugins in order and
// returns the first opinion, or the Fallback verdict when none has one or
// a plugin faults.
//
// # Notes
//
// The plugins see the failure redacted (abi.NewInput, built once per call
// for the whole chain) and everything they return or emit is redacted
// with the same known secrets.
func (h *Host) Classify(ctx context.Context, f verdict.Failure) verdict.Verdict {
	builtin := h.fallback.Classify(ctx, f)
	var rc redactedCall
	built := false
	for {
		c := h.cur.Load()
		if c == nil || !c.hasActive() {
			return builtin
		}
		c.mu.RLock()
		if c.closed {
			// Reload swapped c out after we loaded it; take the new one.
			c.mu.RUnlock()
			continue
		}
		if !built {
			known := h.known(ctx)
			rc, built = redactedCall{in: abi.NewInput(f, builtin, known), known: known}, true
		}
		v, ok := c.classify(ctx, &rc, builtin)
		c.mu.RUnlock()
		if ok {
			return v
		}
		return builtin
	}
}

// redactedCall is one classification as the plugins see it: the redacted
// input and the secrets every plugin output is scrubbed of.
type redactedCall struct {
	in    abi.Input
	known []secret.Secret
}

// hasActive reports whether any plugin of c loaded.
func (c *chain) hasActive() bool {
	for _, e := range c.entries {
		if e.p != nil {
			return true
		}
	}
	return false
}

func (c *chain) classify(ctx context.Context, rc *redactedCall, builtin verdict.Verdict) (verdict.Verdict, bool) {
	for _, e := range c.entries {
		if e.p == nil {
			continue
		}
		v, err := e.p.classify(ctx, rc, builtin)
		if err == nil {
			return v, true
		}
		if errors.Is(err, errCanceled) {
			return verdict.Verdict{}, false
		}
	}
	return verdict.Verdict{}, false
}

// Status reports every plugin of the current chain, in chain order.
func (h *Host) Status() []PluginStatus {
	c := h.cur.Load()
	if c == nil {
		return []PluginStatus{}
	}
	return c.status()
}

func (c *chain) status() []PluginStatus {
	out := make([]PluginStatus, 0, len(c.entries))
	for _, e := range c.entries {
		if e.p == nil {
			s := e.rejected
			s.Faults = map[FaultKind]int64{}
			out = append(out, s)
			continue
		}
		out = append(out, e.p.status())
	}
	return out
}

// Reload loads ms into a new chain and, when every plugin loaded, swaps
// it in and closes the old chain once its in-flight calls have drained.
//
// # Notes
//
// If any plugin is rejected the old chain keeps serving: Reload returns
// the statuses of the chain it tried to build and an error naming every
// rejection on one line. After [Host.Close] it returns [ErrClosed].
func (h *Host) Reload(ctx context.Context, ms []Manifest) ([]PluginStatus, error) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	if h.cache == nil && len(ms) > 0 {
		h.cache = openCache("", h.log)
	}
	c := h.build(ctx, ms)
	var rejected []string
	for _, e := range c.entries {
		if e.p == nil {
			rejected = append(rejected, e.rejected.Error)
		}
	}
	if err := ctx.Err(); err != nil {
		rejected = append(rejected, "reload: "+err.Error())
	}
	if len(rejected) > 0 {
		st := c.status()
		_ = h.closeChain(context.WithoutCancel(ctx), c)
		return st, fmt.Errorf("reload failed, the previous plugins keep serving: %s", strings.Join(rejected, "; "))
	}
	old := h.cur.Swap(c)
	if err := h.closeChain(ctx, old); err != nil {
		h.log.Warn("close previous plugins", "err", err)
	}
	return c.status(), nil
}

// closeChain waits for c's in-flight calls, up to ctx, then closes every
// plugin in it.
func (h *Host) closeChain(ctx context.Context, c *chain) error {
	if c == nil {
		return nil
	}
	drained := make(chan struct{})
	go func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		// Calls still running end when their modules close below.
	}
	var errs []error
	for _, e := range c.entries {
		if e.p != nil {
			errs = append(errs, e.p.close(context.WithoutCancel(ctx)))
		}
	}
	return errors.Join(errs...)
}

func (h *Host) closeCache(ctx context.Context) error {
	if h.cache == nil {
		return nil
	}
	return h.cache.Close(ctx)
}

// Close stops serving plugins (later calls get the Fallback verdict),
// waits for in-flight calls up to ctx, and closes every plugin and the
// compilation cache.
func (h *Host) Close(ctx context.Context) error {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	old := h.cur.Swap(nil)
	return errors.Join(h.closeChain(ctx, old), h.closeCache(ctx))
}
