package plugins

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
)

// TestFaultMatrix: every call fault falls back to the built-in verdict, is
// counted by kind, discards the instance, and the next call works.
func TestFaultMatrix(t *testing.T) {
	cases := []struct {
		fixture string
		status  int
		kind    FaultKind
		lastErr string
	}{
		{"spin", 500, FaultTimeout, "timeout: plugin timed out: errclass_classify ran past its 50ms deadline"},
		{"trap", 500, FaultTrap, "trap: errclass_classify: wasm error: unreachable"},
		{"membomb", 500, FaultMemory, "memory: linear memory grew to 32768 KiB, over 4x its 128 KiB after initialisation"},
		{"badoutput", 500, FaultBadOutput, `bad_output: bad output: unknown class "sunny"`},
		{"badoutput", 501, FaultBadOutput, "bad_output: output 0xffff0000+16 is outside memory of 131072 bytes"},
		{"badoutput", 502, FaultBadOutput, "bad_output: output of 8000 bytes exceeds the 4096-byte cap"},
		{"badoutput", 503, FaultBadOutput, "bad_output: bad output: not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_%d", tc.fixture, tc.status), func(t *testing.T) {
			h := newHost(t, nil, fixture(t, tc.fixture))
			ctx := context.Background()

			require.Equal(t, "plugin:"+tc.fixture, h.Classify(ctx, failure(403)).DecidedBy, "warm-up call")
			f := failure(tc.status)
			if tc.kind == FaultTimeout {
				// The guest spins on this call, so the default deadline
				// passes however fast the machine is; the calls around it
				// keep the generous one.
				setCallTimeout(h, DefaultCallTimeout)
			}
			v := h.Classify(ctx, f)
			setCallTimeout(h, generousCallTimeout)
			assert.Equal(t, verdict.ClassifyBuiltin(f), v)

			s := statusOf(t, h, tc.fixture)
			assert.Equal(t, map[FaultKind]int64{tc.kind: 1}, s.Faults)
			assert.True(t, strings.HasPrefix(s.LastError, tc.lastErr), "lastError %q, want prefix %q", s.LastError, tc.lastErr)
			assert.NotContains(t, s.LastError, "\n")
			assert.Equal(t, StateActive, s.State)

			// The next call works, on a fresh instance.
			v = h.Classify(ctx, failure(403))
			assert.Equal(t, verdict.ClassInvalidGrant, v.Class)
			assert.Equal(t, "plugin:"+tc.fixture, v.DecidedBy)
			assert.EqualValues(t, 3, statusOf(t, h, tc.fixture).Calls)
		})
	}
}

// TestCallDeadlineFromManifest: the per-call deadline is the manifest's
// callTimeoutMs, 50 ms when unset. The spinning guest passes any deadline,
// so only the one call that spins is made, with the limits as configured.
func TestCallDeadlineFromManifest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		lastErr string
	}{
		{"default", 0, "timeout: plugin timed out: errclass_classify ran past its 50ms deadline"},
		{"manifest", 20 * time.Millisecond, "timeout: plugin timed out: errclass_classify ran past its 20ms deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := fixture(t, "spin")
			m.Limits.CallTimeout = tc.timeout
			h := newHostAsConfigured(t, nil, m)
			f := failure(500)
			assert.Equal(t, verdict.ClassifyBuiltin(f), h.Classify(context.Background(), f))
			s := statusOf(t, h, "spin")
			assert.Equal(t, map[FaultKind]int64{FaultTimeout: 1}, s.Faults)
			assert.Equal(t, tc.lastErr, s.LastError)
		})
	}
}

// TestRejections: every load failure is one precise line in Status, and
// the plugins that did load keep serving.
func TestRejections(t *testing.T) {
	badSum := fixture(t, "ok")
	badSum.ID = "badsum"
	badSum.SHA256 = strings.Repeat("0", 64)
	initspin := fixture(t, "initspin")
	initspin.Limits.InitTimeout = 50 * time.Millisecond
	missing := fixture(t, "ok")
	missing.ID, missing.Wasm = "missing", filepath.Join(t.TempDir(), "nope.wasm")
	tooBig := fixture(t, "ok")
	tooBig.ID, tooBig.Limits.MemoryPages = "toobig", 1
	dup := fixture(t, "ok")
	parsed, perr := ParseManifest([]byte(`{"id":"typo","abi":1,"wasm":"x.wasm","sha256":"` + strings.Repeat("a", 64) + `","limits":{"memoryPagez":1}}`))
	require.Error(t, perr)

	logs := &syncBuffer{}
	h := newHost(t, logs, fixture(t, "nomarker"), fixture(t, "extraimport"), fixture(t, "wrongsig"),
		badSum, initspin, missing, tooBig, parsed, fixture(t, "ok"), dup)

	want := map[string]string{
		"nomarker":    "plugin nomarker: ABI errclass v1 violation: missing export errclass_abi_v1",
		"extraimport": "plugin extraimport: ABI errclass v1 violation: import wasi_snapshot_preview1.path_open is not allowed",
		"wrongsig":    "plugin wrongsig: ABI errclass v1 violation: export errclass_classify has signature (i32,i32)->(i32), want (i32,i32)->(i64)",
		"badsum":      "plugin badsum: sha256 mismatch: wasm testdata/ok.wasm has sha256 ",
		"initspin":    "plugin initspin: plugin timed out: _initialize ran past its 50ms deadline",
		"missing":     "plugin missing: read wasm: open ",
		"toobig":      "plugin toobig: compile: section memory: min 2 pages (128 Ki) over limit of 1 pages (64 Ki)",
		"typo":        "plugin typo: ",
	}
	st := h.Status()
	require.Len(t, st, 10)
	got := map[string]PluginStatus{}
	for _, s := range st[:8] {
		got[s.ID] = s
	}
	for id, prefix := range want {
		s := got[id]
		assert.Equal(t, StateRejected, s.State, id)
		assert.True(t, strings.HasPrefix(s.Error, prefix), "%s: error %q, want prefix %q", id, s.Error, prefix)
		assert.NotContains(t, s.Error, "\n", id)
	}
	assert.Equal(t, StateActive, st[8].State)
	assert.Equal(t, StateRejected, st[9].State)
	assert.Equal(t, "plugin ok: duplicate id", st[9].Error)

	v := h.Classify(context.Background(), failure(403))
	assert.Equal(t, "plugin:ok", v.DecidedBy)
	assert.Contains(t, logs.String(), "plugin rejected")
}

func TestChainOrderFirstOpinionWins(t *testing.T) {
	// trap has no opinion on 401 and faults on 500; ok decides 403.
	h := newHost(t, nil, fixture(t, "trap"), fixture(t, "ok"))
	ctx := context.Background()
	assert.Equal(t, "plugin:trap", h.Classify(ctx, failure(403)).DecidedBy)
	assert.Equal(t, "builtin", h.Classify(ctx, failure(401)).DecidedBy)
	// A fault in the first plugin lets the next one answer.
	assert.Equal(t, verdict.ClassifyBuiltin(failure(500)), h.Classify(ctx, failure(500)))
	st := h.Status()
	assert.EqualValues(t, 3, st[0].Calls)
	assert.EqualValues(t, 2, st[1].Calls)
}

func TestCircuitBreaker(t *testing.T) {
	m := fixture(t, "trap")
	h := newHost(t, nil, m)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setNow(h, func() time.Time { return now })
	ctx := context.Background()
	for range breakerFailures {
		assert.Equal(t, "builtin", h.Classify(ctx, failure(500)).DecidedBy)
	}
	s := statusOf(t, h, "trap")
	assert.Equal(t, StateOpen, s.State)
	assert.EqualValues(t, breakerFailures, s.Faults[FaultTrap])

	// Open: the plugin is skipped, not called.
	assert.Equal(t, "builtin", h.Classify(ctx, failure(403)).DecidedBy)
	assert.EqualValues(t, breakerFailures, statusOf(t, h, "trap").Calls)

	// After the cooldown one call probes it, and success closes the breaker.
	now = now.Add(breakerCooldown)
	assert.Equal(t, "plugin:trap", h.Classify(ctx, failure(403)).DecidedBy)
	assert.Equal(t, StateActive, statusOf(t, h, "trap").State)
}

// TestConcurrentCallsAndReload: calls keep being answered while Reload
// swaps chains under them, every answer is a whole verdict of one chain
// (or the fallback), and after each Reload the new chain answers.
//
// Reloaded chains run with their manifests' limits, here the longest
// deadline a manifest may ask for, so a call that misses it only does on
// an overloaded machine: such fallbacks are tolerated and counted, and a
// burst of them cannot keep the plugin switched off (skipBreakerCooldowns).
func TestConcurrentCallsAndReload(t *testing.T) {
	const callers, reloads = 4, 6
	// Each generation has its own id, so a verdict names the chain that
	// gave it; ok and trap give the same verdict on 403.
	generation := func(i int) Manifest {
		name := "ok"
		if i%2 == 1 {
			name = "trap"
		}
		m := manifestFor(t, fmt.Sprintf("%s-%d", name, i), filepath.Join("testdata", name+".wasm"))
		m.Limits.CallTimeout = MaxCallTimeout
		return m
	}
	h := newHost(t, nil, generation(0))
	skipBreakerCooldowns(h)
	ctx := context.Background()
	f := failure(403)
	builtin := verdict.ClassifyBuiltin(f)
	pluginVerdict := verdict.Verdict{Class: verdict.ClassInvalidGrant, RetryAfter: 1500 * time.Millisecond, Reason: "wat fixture: 403 is invalid_grant"}
	ids := map[string]bool{}
	for i := range reloads + 1 {
		ids["plugin:"+generation(i).ID] = true
	}

	var fallbacks atomic.Int64
	answered := make(chan string, 64) // decidedBy of plugin verdicts; dropped when full
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopCallers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopCallers()
	for range callers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				v := h.Classify(ctx, f)
				if v == builtin {
					fallbacks.Add(1)
					continue
				}
				by := v.DecidedBy
				v.DecidedBy = ""
				if !ids[by] || v != pluginVerdict {
					t.Errorf("verdict %+v decided by %q, want a plugin's %+v or the built-in %+v", v, by, pluginVerdict, builtin)
					return
				}
				select {
				case answered <- by:
				default:
				}
			}
		})
	}
	waitAnswer := func(by string) {
		t.Helper()
		bound := time.After(time.Minute) // a deadlock guard, not a speed requirement
		for {
			select {
			case got := <-answered:
				if got == by {
					return
				}
			case <-bound:
				t.Fatalf("no call answered by %s", by)
			}
		}
	}
	waitAnswer("plugin:" + generation(0).ID)
	for i := 1; i <= reloads; i++ {
		m := generation(i)
		st, err := h.Reload(ctx, []Manifest{m})
		require.NoError(t, err)
		require.Len(t, st, 1)
		require.Equal(t, m.ID, st[0].ID)
		waitAnswer("plugin:" + m.ID)
	}
	stopCallers()

	s := statusOf(t, h, generation(reloads).ID)
	assert.Positive(t, s.Calls)
	for kind := range s.Faults {
		assert.Contains(t, []FaultKind{FaultTimeout, FaultPoolExhausted}, kind, "only a slow machine may make a call fall back")
	}
	t.Logf("%d fallbacks from calls that missed their deadline", fallbacks.Load())
}

func TestReloadFailureKeepsOldChain(t *testing.T) {
	h := newHost(t, nil, fixture(t, "ok"))
	ctx := context.Background()
	st, err := h.Reload(ctx, []Manifest{fixture(t, "trap"), fixture(t, "nomarker")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "plugin nomarker: ABI errclass v1 violation: missing export errclass_abi_v1")
	assert.NotContains(t, err.Error(), "\n")
	require.Len(t, st, 2)
	assert.Equal(t, StateRejected, st[1].State)
	assert.Equal(t, "ok", h.Status()[0].ID)
	assert.Equal(t, "plugin:ok", h.Classify(ctx, failure(403)).DecidedBy)

	// An empty reload removes every plugin.
	st, err = h.Reload(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, st)
	assert.Equal(t, "builtin", h.Classify(ctx, failure(403)).DecidedBy)

	require.NoError(t, h.Close(ctx))
	_, err = h.Reload(ctx, nil)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Equal(t, "builtin", h.Classify(ctx, failure(403)).DecidedBy)
	assert.Empty(t, h.Status())
}

func TestRecycleAfter(t *testing.T) {
	m := fixture(t, "ok")
	m.Limits.RecycleAfter = 3
	h := newHost(t, nil, m)
	for range 10 {
		assert.Equal(t, "plugin:ok", h.Classify(context.Background(), failure(403)).DecidedBy)
	}
	assert.Empty(t, statusOf(t, h, "ok").Faults)
}

func TestCacheDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "cache")
	h, err := NewHost(context.Background(), Options{Manifests: []Manifest{fixture(t, "ok")}, CacheDir: dir})
	require.NoError(t, err)
	require.NoError(t, h.Close(context.Background()))
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
}

func TestCanceledCallerIsNotAFault(t *testing.T) {
	h := newHost(t, nil, fixture(t, "spin"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.Equal(t, "builtin", h.Classify(ctx, failure(500)).DecidedBy)
	assert.Empty(t, statusOf(t, h, "spin").Faults)
}

// TestManyManifestsOneWasm: several plugins built from the same wasm load
// together, from a warm file cache, and all serve. (Loaded in parallel
// they could instantiate a module wazero had not finished reading from the
// cache, and panic: wazero/wazero#2547.)
func TestManyManifestsOneWasm(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() // a cache of this test's own, warmed first
	warm, err := NewHost(ctx, Options{Manifests: []Manifest{fixture(t, "ok")}, CacheDir: dir})
	require.NoError(t, err)
	require.NoError(t, warm.Close(ctx))
	for round := range 10 {
		var ms []Manifest
		for i := range 8 {
			ms = append(ms, manifestFor(t, fmt.Sprintf("ok-%d", i), filepath.Join("testdata", "ok.wasm")))
		}
		h, err := NewHost(ctx, Options{Manifests: ms, CacheDir: dir})
		require.NoError(t, err)
		for _, s := range h.Status() {
			assert.Equal(t, StateActive, s.State, "round %d: %s: %s", round, s.ID, s.Error)
		}
		setCallTimeout(h, generousCallTimeout)
		assert.Equal(t, "plugin:ok-0", h.Classify(ctx, failure(403)).DecidedBy, "round %d", round)
		require.NoError(t, h.Close(ctx))
	}
}
