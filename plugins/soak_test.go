package plugins

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
)

// soakCalls is the length of the host soak; goSoakCalls that of the Go
// guest's, whose calls cost ten times more. The Go guest's memory is flat
// from the first call (2432 KiB, Go 1.26) and 200k calls showed nothing
// 50k do not, while 50k keep the package short enough to repeat
// (go test -count=10) on a busy 2-core machine.
const (
	soakCalls   = 200_000
	goSoakCalls = 50_000
)

// TestSoakGoGuestMemoryBounded calls one Go-guest instance 50k times,
// bypassing recycling, and checks that its linear memory levels off: the
// SDK's per-call yield lets the guest's garbage collector run.
func TestSoakGoGuestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	h := newHost(t, nil, goManifest(t))
	p := h.cur.Load().entries[0].p
	ctx := context.Background()
	in, _, err := p.acquire(ctx)
	require.NoError(t, err)
	defer p.release(ctx, in, true)

	f := orgFailure("org-acme-0001")
	builtin := verdict.ClassifyBuiltin(f)
	var warm uint32
	for i := range goSoakCalls {
		in.calls = 0 // never recycle
		out, kind, err := p.call(ctx, in, f, builtin)
		if err != nil {
			t.Fatalf("call %d: %s: %v", i, kind, err)
		}
		if out.Class != verdict.ClassInvalidGrant {
			t.Fatalf("call %d: class %q", i, out.Class)
		}
		if i == 10_000 {
			warm = in.mem.Size()
		}
	}
	final := in.mem.Size()
	t.Logf("go guest linear memory: %d KiB after init, %d KiB after 10k calls, %d KiB after %d calls",
		in.baseSize>>10, warm>>10, final>>10, goSoakCalls)
	assert.LessOrEqual(t, final, uint32(16<<20), "guest memory above 16 MiB")
	assert.LessOrEqual(t, final, warm+warm/4, "guest memory kept growing after warm-up")
}

// TestSoakHostBounded drives 200k classifications through the Host (WAT
// guest, recycling every 10k calls, the default 50 ms deadline) and checks
// that the host's heap and goroutines level off and that every fallback is
// accounted for by kind.
//
// A call can miss its deadline when the machine is busy enough; that is
// the host working as designed, so such fallbacks are tolerated and
// counted, never taken for a leak or a wrong verdict, and a burst of them
// does not keep the breaker open (skipBreakerCooldowns): every call
// reaches the guest.
func TestSoakHostBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped with -short")
	}
	goroutines := runtime.NumGoroutine()
	h, err := NewHost(context.Background(), Options{Manifests: []Manifest{fixture(t, "ok")}, CacheDir: testCacheDir})
	require.NoError(t, err)
	skipBreakerCooldowns(h)
	ctx := context.Background()
	f := failure(403)
	builtin := verdict.ClassifyBuiltin(f)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	fallbacks := 0
	classify := func(i int) {
		switch v := h.Classify(ctx, f); {
		case v.DecidedBy == "plugin:ok":
		case v == builtin:
			fallbacks++
		default:
			t.Fatalf("call %d: %+v", i, v)
		}
	}
	const warmup = 10_000
	for i := range warmup {
		classify(i)
	}
	before := heap()
	for i := range soakCalls {
		classify(warmup + i)
	}
	after := heap()
	t.Logf("host heap: %d KiB after warm-up, %d KiB after %d calls", before>>10, after>>10, soakCalls)
	assert.Less(t, after, before+8<<20, "host heap grew by more than 8 MiB")

	s := statusOf(t, h, "ok")
	t.Logf("%d of %d calls fell back after missing the deadline", fallbacks, warmup+soakCalls)
	assert.EqualValues(t, warmup+soakCalls, s.Calls)
	assert.EqualValues(t, fallbacks, s.Faults[FaultTimeout], "every fallback is a counted missed deadline")
	for kind, n := range s.Faults {
		if kind != FaultTimeout {
			assert.Zero(t, n, "%s faults: only missed deadlines may make this guest fall back", kind)
		}
	}

	require.NoError(t, h.Close(ctx))
	// Goroutines of the last calls may still be on their way out.
	assert.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutines+1 }, time.Minute, time.Millisecond,
		"goroutines left after Close (%d before NewHost)", goroutines)
}
