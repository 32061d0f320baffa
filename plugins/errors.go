package plugins

import "errors"

// Sentinel errors. Load errors wrap the first three; call faults are
// recorded in Status by [FaultKind] rather than returned, since a fault
// never reaches the caller of Classify.
var (
	// ErrABI marks a module that does not implement ABI "errclass v1":
	// a missing or mistyped export, or an import outside the allow-list.
	ErrABI = errors.New("ABI errclass v1 violation")
	// ErrChecksum marks a module whose sha256 differs from its manifest's.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrPluginTimeout marks a call or an instantiation that ran past its
	// deadline.
	ErrPluginTimeout = errors.New("plugin timed out")
	// ErrClosed is returned by Reload after Close.
	ErrClosed = errors.New("plugin host closed")
)

// FaultKind names one way a call can fail; Status counts faults by kind.
type FaultKind string

// The fault kinds. Every fault falls back to the built-in verdict.
const (
	// FaultTrap: the guest trapped (unreachable, out-of-bounds access, a Go
	// panic) or exited. The instance is discarded.
	FaultTrap FaultKind = "trap"
	// FaultTimeout: the call ran past its deadline. The instance is closed.
	FaultTimeout FaultKind = "timeout"
	// FaultBadOutput: the packed result pointed outside memory, was too
	// long, or did not decode to a valid verdict. The instance is discarded.
	FaultBadOutput FaultKind = "bad_output"
	// FaultMemory: linear memory grew past the plugin's growth allowance
	// during a call. The instance is discarded and its answer ignored.
	FaultMemory FaultKind = "memory"
	// FaultAlloc: errclass_alloc returned 0 or a buffer outside memory.
	FaultAlloc FaultKind = "alloc"
	// FaultInputTooLarge: the input JSON exceeded the plugin's cap even
	// with the body cut away.
	FaultInputTooLarge FaultKind = "input_too_large"
	// FaultPoolExhausted: no instance became free within the call deadline.
	FaultPoolExhausted FaultKind = "pool_exhausted"
	// FaultInstantiate: a replacement instance failed to start.
	FaultInstantiate FaultKind = "instantiate"
	// FaultStackOverflow: the guest exceeded the call-depth bound (unbounded
	// recursion). The instance is discarded.
	FaultStackOverflow FaultKind = "stack_overflow"
)
