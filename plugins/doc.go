// Package plugins hosts WebAssembly classification plugins (ABI
// "errclass v1"; README.md, Plugins; docs/BEHAVIOUR.md §4.4) on wazero and implements
// verdict.Classifier with them.
//
// A plugin is a core WebAssembly reactor that exports memory, the marker
// errclass_abi_v1, errclass_alloc(size i32) -> i32 and
// errclass_classify(ptr i32, len i32) -> i64, and may export _initialize.
// It reads the failure as JSON and answers {class, retryAfterMs, reason}
// or nothing (no opinion). It may change the class, the retry-after and
// the reason of a verdict, never state.
//
// Loading is strict: the sha256 is checked before compiling, the module
// is rewritten to bound its call stack (package stackguard), the compiled
// module is validated before any guest code runs, and every rejection is
// one precise line in [Host.Status] while the other plugins serve. Calls
// are bounded in time, memory, input and output; any fault falls back to
// the built-in verdict, discards the instance and is counted.
//
// plugins imports core, hostfuncs, plugins/internal/abi,
// plugins/internal/stackguard, wazero and go-json. plugins/sdk is the guest side for Go authors and imports
// nothing of the host.
//
// Entry points:
//   - [ParseManifest], [ParseManifests], [LoadManifestFile]: manifests.
//   - [NewHost], then [Host.Classify], [Host.Status], [Host.Reload],
//     [Host.Close].
package plugins
