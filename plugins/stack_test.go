package plugins

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
)

// procStatusKiB reads one "Vm…" field of /proc/self/status, in KiB, or -1
// where there is no procfs.
func procStatusKiB(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(t, err)
			return n
		}
	}
	return -1
}

// TestStackOverflowIsBounded: unbounded recursion in a guest traps with
// its own fault kind, stack_overflow (not timeout: the call deadline is
// the 1 s maximum here, so a trap that waited for it would be labelled
// timeout), host memory stays bounded, and the next call works. Bounded
// recursion 1000 deep still answers.
func TestStackOverflowIsBounded(t *testing.T) {
	m := fixture(t, "recurse")
	m.Limits.CallTimeout = MaxCallTimeout
	h := newHost(t, nil, m)
	ctx := t.Context()

	v := h.Classify(ctx, failure(501))
	require.Equal(t, "plugin:recurse", v.DecidedBy, "bounded recursion answers")
	assert.Equal(t, "recursed 1000 deep", v.Reason)

	// Reset the peak to the current RSS (Linux), so earlier tests in the
	// process do not hide this one's peak.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS (/proc/self/clear_refs: %v); the bound is not measured here", err)
	}
	hwmBefore := procStatusKiB(t, "VmHWM")
	f := failure(500)
	start := time.Now()
	for range 3 {
		assert.Equal(t, verdict.ClassifyBuiltin(f), h.Classify(ctx, f))
	}
	took := time.Since(start) / 3
	hwmAfter := procStatusKiB(t, "VmHWM")

	s := statusOf(t, h, "recurse")
	assert.Equal(t, map[FaultKind]int64{FaultStackOverflow: 3}, s.Faults)
	assert.Contains(t, s.LastError, "stack_overflow: errclass_classify: call depth exceeded")
	t.Logf("unbounded recursion: trapped after %v per call (observed, not asserted); peak RSS %d -> %d KiB (+%d KiB)",
		took, hwmBefore, hwmAfter, hwmAfter-hwmBefore)
	if hwmBefore > 0 {
		// wazero alone lets one call's stack reach ~84 MB (with its
		// previous copy alive, ~125 MB); the call-depth guard bounds it
		// to a few MiB.
		assert.Less(t, hwmAfter-hwmBefore, int64(48<<10), "peak RSS grew by more than 48 MiB")
	}

	v = h.Classify(ctx, failure(501))
	assert.Equal(t, "plugin:recurse", v.DecidedBy, "a fresh instance serves after the overflow")
}

// TestAllocationBombIsRejected: a 23-byte module declaring 3.7 billion
// imports, which made wazero abort the process with out of memory, is a
// rejected plugin with a clear message, and the host keeps serving.
func TestAllocationBombIsRejected(t *testing.T) {
	bomb := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 1, 5, 1, 0x60, 1, 0x7f, 0, 2, 6, 0xdb, 0xdb, 0xdb, 0xdb, 0x0d, 0}
	path := filepath.Join(t.TempDir(), "bomb.wasm")
	require.NoError(t, os.WriteFile(path, bomb, 0o600))
	h := newHost(t, nil, manifestFor(t, "bomb", path), fixture(t, "ok"))
	s := statusOf(t, h, "bomb")
	assert.Equal(t, StateRejected, s.State)
	assert.Contains(t, s.Error, "plugin bomb: compile: stack guard: malformed module: section 2: vector of 3682004443 entries in 1 bytes")
	assert.Equal(t, "plugin:ok", h.Classify(t.Context(), failure(403)).DecidedBy)
}
