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
	"github.com/tetratelabs/wazero/api"
)

func TestAllowListHasReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, imp := range AllowList() {
		key := imp.Module + "." + imp.Name
		assert.False(t, seen[key], "duplicate %s", key)
		seen[key] = true
		assert.NotEmpty(t, imp.Reason, key)
		assert.True(t, Allowed(imp.Module, imp.Name))
	}
	assert.False(t, Allowed(ModuleWASI, "path_open"))
	assert.False(t, Allowed(ModuleWASI, "sock_accept"))
	assert.False(t, Allowed(ModuleEnv, "abort"))
}

func TestSanitize(t *testing.T) {
	assert.Equal(t, "teapot[31m line", Sanitize([]byte("teapot\n\x1b[31m line")))
	assert.Equal(t, "a\uFFFDb", Sanitize([]byte("a\xffb")))
	assert.Equal(t, "abc", Sanitize([]byte("a\u202eb\u200bc")))
}

func TestLogPerCallLimitsReset(t *testing.T) {
	var out bytes.Buffer
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	l := &logger{log: log, id: "p1"}
	// A guest module: memory with a line at 0 and a 2000-byte line at 64.
	mod := fakeModule(t, r)
	require.True(t, mod.Memory().Write(0, []byte("hi\n\x1b[31mthere")))
	big := bytes.Repeat([]byte("y"), 2000)
	require.True(t, mod.Memory().Write(64, big))

	var budget CallLog
	for call := 0; call < 3; call++ {
		budget.Reset()
		cctx := WithCallLog(ctx, &budget)
		for i := 0; i < MaxLogLinesPerCall+4; i++ {
			l.errclassLog(cctx, mod, []uint64{1, 0, 13})
		}
		assert.Equal(t, MaxLogLinesPerCall, budget.Lines(), "call %d", call)
		assert.Equal(t, 4, budget.Dropped(), "call %d", call)
	}
	assert.Equal(t, 3*MaxLogLinesPerCall, strings.Count(out.String(), "plugin log"))
	assert.Contains(t, out.String(), "plugin=p1")
	assert.Contains(t, out.String(), "line=hi[31mthere")
	assert.NotContains(t, out.String(), "\x1b")

	// Truncation and the byte limit: 1024-byte lines, 4 KiB per call.
	out.Reset()
	budget.Reset()
	cctx := WithCallLog(ctx, &budget)
	for i := 0; i < 6; i++ {
		l.errclassLog(cctx, mod, []uint64{3, 64, 2000})
	}
	assert.Equal(t, 4, budget.Lines())
	assert.Equal(t, 2, budget.Dropped())
	assert.Contains(t, out.String(), "truncated=true")
	assert.Contains(t, out.String(), "level=ERROR")
	assert.NotContains(t, out.String(), strings.Repeat("y", MaxLogLineBytes+1))

	// Out of bounds, and no allowance at all.
	budget.Reset()
	l.errclassLog(cctx, mod, []uint64{0, 1 << 30, 10})
	assert.Equal(t, 1, budget.Dropped())
	out.Reset()
	l.errclassLog(ctx, mod, []uint64{0, 0, 2})
	assert.Empty(t, out.String())
}

// fakeModule instantiates a tiny module with one page of exported memory.
func fakeModule(t *testing.T, r wazero.Runtime) api.Module {
	t.Helper()
	// (module (memory (export "memory") 1))
	wasm := []byte{0, 'a', 's', 'm', 1, 0, 0, 0, 5, 3, 1, 0, 1, 7, 10, 1, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0}
	mod, err := r.InstantiateWithConfig(context.Background(), wasm, wazero.NewModuleConfig().WithName("guest"))
	require.NoError(t, err)
	return mod
}
