package hostfuncs

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Instantiate provides a plugin's imports in r: the env module with
// errclass_log, whose lines carry plugin=id, and WASI preview1. Call it
// once per Runtime, before instantiating the plugin; r must hold one plugin
// only, so one module cannot reach another's exports.
//
// # Notes
//
// The capabilities a WASI call could reach are decided per instance by the
// plugin's wazero.ModuleConfig; use [SandboxConfig], which grants nothing.
// A nil log discards plugin lines (the per-call limits still apply).
func Instantiate(ctx context.Context, r wazero.Runtime, id string, log *slog.Logger) error {
	l := &logger{log: log, id: id}
	_, err := r.NewHostModuleBuilder(ModuleEnv).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(l.errclassLog), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		WithParameterNames("level", "ptr", "len").
		Export("errclass_log").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("instantiate env: %w", err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		return fmt.Errorf("instantiate wasi: %w", err)
	}
	return nil
}

// SandboxConfig returns the module configuration of one guest instance:
// anonymous (so a compiled module can be instantiated many times), started
// by _initialize when the module has one, and with stdout and stderr sent
// to out (nil discards them).
//
// # Notes
//
// Everything else is wazero's default, which is the sandbox this package
// promises: no filesystem or preopens, no args, no environment, no
// sockets, fake walltime and nanotime, a no-op sleep and yield, and a
// deterministic random source. Never add WithSysWalltime, WithSysNanotime,
// WithSysNanosleep, WithRandSource or WithFS here.
func SandboxConfig(out io.Writer) wazero.ModuleConfig {
	cfg := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions("_initialize")
	if out != nil {
		cfg = cfg.WithStdout(out).WithStderr(out)
	}
	return cfg
}
