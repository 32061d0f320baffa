package stackguard

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tetratelabs/wazero"
)

const budget = 1 << 20

// TestInstrumentKeepsEveryFixtureIntact: every fixture still compiles
// after the rewrite, with the same exported functions and signatures,
// plus the counter.
func TestInstrumentKeepsEveryFixtureIntact(t *testing.T) {
	paths, err := filepath.Glob("../../testdata/*.wasm")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			orig, err := os.ReadFile(path)
			require.NoError(t, err)
			got, err := Instrument(orig, budget)
			require.NoError(t, err)
			before, err := r.CompileModule(ctx, orig)
			require.NoError(t, err)
			after, err := r.CompileModule(ctx, got)
			require.NoError(t, err)
			require.Len(t, after.ExportedFunctions(), len(before.ExportedFunctions()))
			for name, fn := range before.ExportedFunctions() {
				require.Contains(t, after.ExportedFunctions(), name)
				assert.Equal(t, fn.ParamTypes(), after.ExportedFunctions()[name].ParamTypes(), name)
				assert.Equal(t, fn.ResultTypes(), after.ExportedFunctions()[name].ResultTypes(), name)
			}
			assert.Equal(t, len(before.ImportedFunctions()), len(after.ImportedFunctions()))
			again, err := Instrument(orig, budget)
			require.NoError(t, err)
			assert.Equal(t, got, again, "the rewrite is deterministic (the compilation cache keys on it)")
		})
	}
}

// TestGuardTrapsRunawayRecursion: recursion past the budget traps with
// the counter above the budget; a call that returns leaves it at 0.
func TestGuardTrapsRunawayRecursion(t *testing.T) {
	orig, err := os.ReadFile("../../testdata/recurse.wasm")
	require.NoError(t, err)
	wasm, err := Instrument(orig, budget)
	require.NoError(t, err)
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	require.NoError(t, err)
	counter := mod.ExportedGlobal(DepthExport)
	require.NotNil(t, counter)
	classify := mod.ExportedFunction("errclass_classify")

	require.True(t, mod.Memory().WriteString(8192, `{"status":501}`))
	res, err := classify.Call(ctx, 8192, 14)
	require.NoError(t, err, "1000 deep fits")
	assert.EqualValues(t, 512<<32|51, res[0])
	assert.Zero(t, counter.Get(), "every charge was refunded")

	require.True(t, mod.Memory().WriteString(8192, `{"status":500}`))
	_, err = classify.Call(ctx, 8192, 14)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unreachable")
	assert.Greater(t, uint32(counter.Get()), uint32(budget))
}

// TestInstrumentAddsMissingSections: a module without globals or exports
// gets both sections, in order.
func TestInstrumentAddsMissingSections(t *testing.T) {
	// (module (func (param i32) (local i64 i64)))
	orig := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 5, 1, 0x60, 1, 0x7f, 0, // type: (i32) -> ()
		3, 2, 1, 0, // function 0: type 0
		10, 6, 1, 4, 1, 2, 0x7e, 0x0b, // code: locals 2 x i64, end
	}
	got, err := Instrument(orig, budget)
	require.NoError(t, err)
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, got)
	require.NoError(t, err)
	require.NotNil(t, mod.ExportedGlobal(DepthExport))
	assert.Zero(t, mod.ExportedGlobal(DepthExport).Get())
}

// TestInstrumentTypedFunctionReferences: wazero accepts (ref null func)
// parameters by default, so the guard reads them.
func TestInstrumentTypedFunctionReferences(t *testing.T) {
	// (module (func (param (ref null func))))
	orig := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 6, 1, 0x60, 1, 0x63, 0x70, 0, // type: ((ref null func)) -> ()
		3, 2, 1, 0,
		10, 4, 1, 2, 0, 0x0b,
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	_, err := r.CompileModule(ctx, orig)
	require.NoError(t, err, "precondition: wazero accepts the original")
	got, err := Instrument(orig, budget)
	require.NoError(t, err)
	_, err = r.CompileModule(ctx, got)
	require.NoError(t, err)
}

// TestInstrumentRefusesAllocationBombs: counts that would make wazero
// allocate gigabytes before validating (the first made it abort the
// process: fatal error: runtime: out of memory) are refused, so such a
// module never reaches wazero.
func TestInstrumentRefusesAllocationBombs(t *testing.T) {
	header := []byte{0, 'a', 's', 'm', 1, 0, 0, 0}
	types := []byte{1, 4, 1, 0x60, 0, 0}
	funcs := []byte{3, 2, 1, 0}
	cases := []struct {
		name string
		body []byte
		err  string
	}{
		{"3.7 billion imports", []byte{1, 5, 1, 0x60, 1, 0x7f, 0, 2, 6, 0xdb, 0xdb, 0xdb, 0xdb, 0x0d, 0}, "vector of 3682004443 entries in 1 bytes"},
		{"4 billion locals", append(append(append([]byte{}, types...), funcs...), 10, 9, 1, 7, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f), "more than 50000 locals"},
		{"4 GB data segment", append(append(append([]byte{}, types...), funcs...), 10, 4, 1, 2, 0, 0x0b, 11, 7, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f), "length past the end"},
		{"billion element entries", append(append(append([]byte{}, types...), funcs...), 9, 8, 1, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f), "vector of"},
		{"section past the end", []byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f, 4, 'n', 'a', 'm', 'e'}, "length past the end"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Instrument(append(append([]byte{}, header...), tc.body...), budget)
			require.ErrorIs(t, err, ErrModule)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
}

func TestInstrumentRejects(t *testing.T) {
	_, err := Instrument([]byte("not wasm"), budget)
	assert.ErrorIs(t, err, ErrModule)
	// A module that already exports the counter's name.
	orig := []byte{0, 'a', 's', 'm', 1, 0, 0, 0,
		1, 4, 1, 0x60, 0, 0,
		3, 2, 1, 0,
		7, byte(len(DepthExport) + 4), 1, byte(len(DepthExport))}
	orig = append(orig, DepthExport...)
	orig = append(orig, 0, 0, 10, 4, 1, 2, 0, 0x0b)
	_, err = Instrument(orig, budget)
	assert.ErrorContains(t, err, "reserved by the host")
	// Truncated sections.
	_, err = Instrument(orig[:len(orig)-3], budget)
	assert.ErrorIs(t, err, ErrModule)
}

// BenchmarkGuardOverhead: the cost of the wrappers on a call-heavy path,
// recurse.wasm's 1000-deep recursion (1000 guarded calls per op).
func BenchmarkGuardOverhead(b *testing.B) {
	orig, err := os.ReadFile("../../testdata/recurse.wasm")
	require.NoError(b, err)
	guarded, err := Instrument(orig, budget)
	require.NoError(b, err)
	for _, tc := range []struct {
		name string
		wasm []byte
	}{{"plain", orig}, {"guarded", guarded}} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			r := wazero.NewRuntime(ctx)
			defer r.Close(ctx)
			mod, err := r.InstantiateWithConfig(ctx, tc.wasm, wazero.NewModuleConfig().WithName(""))
			require.NoError(b, err)
			require.True(b, mod.Memory().WriteString(8192, `{"status":501}`))
			classify := mod.ExportedFunction("errclass_classify")
			stack := []uint64{8192, 14}
			for b.Loop() {
				stack[0], stack[1] = 8192, 14
				if err := classify.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
