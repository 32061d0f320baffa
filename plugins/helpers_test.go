package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/internal/syncbuf"
)

// fixture returns a manifest for plugins/testdata/<name>.wasm.
func fixture(t testing.TB, name string) Manifest {
	t.Helper()
	path := filepath.Join("testdata", name+".wasm")
	return manifestFor(t, name, path)
}

func manifestFor(t testing.TB, id, path string) Manifest {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return Manifest{ID: id, Version: "1.0.0", ABI: ABIVersion, Wasm: path, SHA256: hex.EncodeToString(sum[:])}
}

// syncBuffer is a goroutine-safe bytes.Buffer (one helper for all).
type syncBuffer = syncbuf.Buffer

// generousCallTimeout is the per-call deadline of tests that are not
// about deadlines: no call of a test fixture comes near it however busy
// the machine, so their verdicts never depend on its speed.
const generousCallTimeout = time.Minute

// newHost starts a Host on ms, closed when the test ends, whose plugins
// have the generous per-call deadline (see [setCallTimeout]); a test of
// the deadline shortens it around the call that spins.
func newHost(t testing.TB, logs *syncBuffer, ms ...Manifest) *Host {
	t.Helper()
	h := newHostAsConfigured(t, logs, ms...)
	setCallTimeout(h, generousCallTimeout)
	return h
}

// newHostAsConfigured is newHost with the manifests' own limits, the
// default 50 ms deadline included, as a deployment runs them: for the
// benchmarks, which report the calls that missed it.
func newHostAsConfigured(t testing.TB, logs *syncBuffer, ms ...Manifest) *Host {
	t.Helper()
	opts := Options{Manifests: ms, CacheDir: testCacheDir}
	if logs != nil {
		opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h, err := NewHost(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close(context.Background())) })
	return h
}

func failure(status int) verdict.Failure {
	return verdict.Failure{Source: verdict.SourceUsage, Status: status, Header: http.Header{"Retry-After": {"7"}},
		Body: []byte(`{"error":{"type":"permission_error"}}`), Message: "usage failed"}
}

func statusOf(t testing.TB, h *Host, id string) PluginStatus {
	t.Helper()
	for _, s := range h.Status() {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("no status for %s", id)
	return PluginStatus{}
}

// skipBreakerCooldowns gives h's breakers a clock that moves on by a whole
// cooldown at every look, so a burst of missed deadlines on a busy machine
// can open a breaker but never keep a plugin switched off: for tests about
// something else that must keep calling the guest.
func skipBreakerCooldowns(h *Host) {
	var looks atomic.Int64
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	setNow(h, func() time.Time { return start.Add(time.Duration(looks.Add(1)) * breakerCooldown) })
}
