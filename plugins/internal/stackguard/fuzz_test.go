package stackguard

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
)

// FuzzInstrument: Instrument never panics on any bytes; what it accepts
// never makes wazero exhaust memory; and what wazero compiles still
// compiles after the rewrite, with the same exported functions. Seeds: testdata/fuzz/FuzzInstrument
// (the WAT fixtures and hand-made modules).
func FuzzInstrument(f *testing.F) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { r.Close(ctx) })
	f.Fuzz(func(t *testing.T, wasm []byte) {
		got, err := Instrument(wasm, budget)
		if err != nil {
			// Refused modules never reach wazero, which could abort the
			// process on some of them (see Instrument).
			return
		}
		before, err := r.CompileModule(ctx, wasm)
		if err != nil {
			return // not a module wazero runs; only "no panic" matters
		}
		defer before.Close(ctx)
		after, err := r.CompileModule(ctx, got)
		if err != nil {
			t.Fatalf("instrumented module does not compile: %v", err)
		}
		defer after.Close(ctx)
		for name := range before.ExportedFunctions() {
			if _, ok := after.ExportedFunctions()[name]; !ok {
				t.Fatalf("export %s lost", name)
			}
		}
	})
}
