package hostfuncs

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

// TestLogLinesAreRedactedBeforeTheCut: every guest log line passes
// through the CallLog's redaction, which sees past the 1 KiB cut, so a
// token straddling the cut leaves no prefix behind; Reset keeps the
// redaction.
func TestLogLinesAreRedactedBeforeTheCut(t *testing.T) {
	const secret = "plainSECRETtoken0123456789"
	var out bytes.Buffer
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	l := &logger{log: slog.New(slog.NewTextHandler(&out, nil)), id: "p1"}
	mod := fakeModule(t, r)
	line := strings.Repeat("x", MaxLogLineBytes-5) + secret + " tail"
	require.True(t, mod.Memory().Write(0, []byte(line)))
	require.True(t, mod.Memory().Write(4096, []byte("short "+secret)))

	var budget CallLog
	budget.SetRedact(func(s string) string { return strings.ReplaceAll(s, secret, "[redacted]") })
	budget.Reset()
	cctx := WithCallLog(ctx, &budget)
	l.errclassLog(cctx, mod, []uint64{2, 0, uint64(len(line))})
	l.errclassLog(cctx, mod, []uint64{2, 4096, uint64(len("short " + secret))})
	// A line at the very end of memory: the look-past window is clamped.
	end := uint64(mod.Memory().Size() - 4)
	l.errclassLog(cctx, mod, []uint64{2, end, 4})

	got := out.String()
	assert.NotContains(t, got, secret[:5], "a prefix of the secret survived")
	assert.Contains(t, got, "xxxxx[reda truncated=true")
	assert.Contains(t, got, "line=\"short [redacted]\" truncated=false")
	assert.Equal(t, 3, budget.Lines())
	assert.Equal(t, 0, budget.Dropped())
}
