package plugins

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

const soakCalls = 200_000

// TestSoakGoGuestMemoryBounded calls one Go-guest instance 200k times,
// bypassing recycling, and checks that its linear memory levels off: the
// SDK's per-call yield lets the guest's garbage collector run.
func TestSoakGoGuestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	h := newHost(t, nil, goManifest(t))
	p := h.cur.Load().entries[0].p
	ctx := context.Background()
	in, _, err := p.acquire(ctx)
	require.NoError(t, err)
	defer p.release(ctx, in, true)

	f := orgFailure("org-acme-0001")
	builtin := core.ClassifyBuiltin(f)
	var warm uint32
	for i := range soakCalls {
		in.calls = 0 // never recycle
		out, kind, err := p.call(ctx, in, f, builtin)
		if err != nil {
			t.Fatalf("call %d: %s: %v", i, kind, err)
		}
		if out.Class != core.ClassInvalidGrant {
			t.Fatalf("call %d: class %q", i, out.Class)
		}
		if i == 10_000 {
			warm = in.mem.Size()
		}
	}
	final := in.mem.Size()
	t.Logf("go guest linear memory: %d KiB after init, %d KiB after 10k calls, %d KiB after %d calls",
		in.baseSize>>10, warm>>10, final>>10, soakCalls)
	assert.LessOrEqual(t, final, uint32(16<<20), "guest memory above 16 MiB")
	assert.LessOrEqual(t, final, warm+warm/4, "guest memory kept growing after warm-up")
}

// TestSoakHostBounded drives 200k classifications through the Host (WAT
// guest, recycling every 10k calls) and checks that the host's heap and
// goroutines stay flat.
func TestSoakHostBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	goroutines := runtime.NumGoroutine()
	h, err := NewHost(context.Background(), Options{Manifests: []Manifest{fixture(t, "ok")}, CacheDir: testCacheDir})
	require.NoError(t, err)
	ctx := context.Background()
	f := failure(403)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for range 10_000 {
		h.Classify(ctx, f)
	}
	before := heap()
	for i := range soakCalls {
		if v := h.Classify(ctx, f); v.DecidedBy != "plugin:ok" {
			t.Fatalf("call %d: %+v", i, v)
		}
	}
	after := heap()
	t.Logf("host heap: %d KiB after warm-up, %d KiB after %d calls", before>>10, after>>10, soakCalls)
	assert.Less(t, after, before+8<<20, "host heap grew by more than 8 MiB")
	s := statusOf(t, h, "ok")
	assert.EqualValues(t, soakCalls+10_000, s.Calls)
	assert.Empty(t, s.Faults)
	require.NoError(t, h.Close(ctx))
	assert.LessOrEqual(t, runtime.NumGoroutine(), goroutines+1, "goroutines left after Close")
}
