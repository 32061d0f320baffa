package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/acctpool/acctpool/hostfuncs"
	"github.com/acctpool/acctpool/plugins/internal/stackguard"
)

// The ABI's export names.
const (
	exportMarker   = "errclass_abi_v1"
	exportAlloc    = "errclass_alloc"
	exportClassify = "errclass_classify"
	exportMemory   = "memory"
	exportInit     = "_initialize"
)

// readWasm reads the module at path and checks its digest against want
// before anything else looks at the bytes.
func readWasm(path, want string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read wasm: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxWasmBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read wasm: %w", err)
	}
	if len(data) > MaxWasmBytes {
		return nil, fmt.Errorf("wasm %s is larger than %d MiB", path, MaxWasmBytes>>20)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%w: wasm %s has sha256 %s, manifest says %s", ErrChecksum, path, got, want)
	}
	return data, nil
}

// guardStack rewrites a verified module so its call stack is bounded by
// MaxStackBytes (see package stackguard: wazero has no stack limit of its
// own below ~50 MB per call).
func guardStack(data []byte) ([]byte, error) {
	out, err := stackguard.Instrument(data, MaxStackBytes)
	if err != nil {
		return nil, fmt.Errorf("compile: %s", firstLine(err.Error()))
	}
	return out, nil
}

// newRuntime returns the Runtime one plugin lives in: compiler engine,
// memory capped at pages, calls cancelled by their context, and the host's
// shared compilation cache (nil for none).
func newRuntime(ctx context.Context, pages uint32, cache wazero.CompilationCache) wazero.Runtime {
	cfg := wazero.NewRuntimeConfigCompiler().
		WithMemoryLimitPages(pages).
		WithCloseOnContextDone(true)
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	return wazero.NewRuntimeWithConfig(ctx, cfg)
}

// compile compiles data in r with parallel workers.
func compile(ctx context.Context, r wazero.Runtime, data []byte) (wazero.CompiledModule, error) {
	ctx = experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	cm, err := r.CompileModule(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("compile: %s", firstLine(err.Error()))
	}
	return cm, nil
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// validate checks the compiled module against ABI "errclass v1" before any
// of its code runs: the marker, the two entry points and their exact
// signatures, optional _initialize, the memory export and its minimum, and
// every import against the hostfuncs allow-list. All problems are joined
// into one line.
func validate(cm wazero.CompiledModule, pages uint32) error {
	var problems []error
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Errorf(format, args...))
	}
	exports := cm.ExportedFunctions()
	want := []struct {
		name            string
		params, results []api.ValueType
		optional        bool
	}{
		{exportMarker, nil, nil, false},
		{exportAlloc, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{exportClassify, []api.ValueType{i32, i32}, []api.ValueType{i64}, false},
		{exportInit, nil, nil, true},
	}
	for _, w := range want {
		fn, ok := exports[w.name]
		if !ok {
			if !w.optional {
				bad("missing export %s", w.name)
			}
			continue
		}
		if !sameTypes(fn.ParamTypes(), w.params) || !sameTypes(fn.ResultTypes(), w.results) {
			bad("export %s has signature %s, want %s", w.name,
				signature(fn.ParamTypes(), fn.ResultTypes()), signature(w.params, w.results))
		}
	}
	if mem, ok := cm.ExportedMemories()[exportMemory]; !ok {
		bad("missing memory export %q", exportMemory)
	} else if mem.Min() > pages {
		bad("memory minimum %d pages exceeds the limit %d", mem.Min(), pages)
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, name, _ := imp.Import()
		if !hostfuncs.Allowed(mod, name) {
			bad("import %s.%s is not allowed", mod, name)
		}
	}
	for _, mem := range cm.ImportedMemories() {
		mod, name, _ := mem.Import()
		bad("memory import %s.%s is not allowed", mod, name)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrABI, joinLine(problems))
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func signature(params, results []api.ValueType) string {
	s := "("
	for i, p := range params {
		if i > 0 {
			s += ","
		}
		s += api.ValueTypeName(p)
	}
	s += ")->("
	for i, r := range results {
		if i > 0 {
			s += ","
		}
		s += api.ValueTypeName(r)
	}
	return s + ")"
}

// joinLine joins errors with "; " so the result stays one line.
func joinLine(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	msg := errs[0].Error()
	for _, e := range errs[1:] {
		msg += "; " + e.Error()
	}
	return errors.New(msg)
}
