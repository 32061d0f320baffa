// Package hostfuncs builds the only host modules a classification plugin may
// link against, env.errclass_log and WASI preview1, and holds the one table
// of imports a plugin may declare, each with the reason it is allowed.
//
// Everything here denies by default. A plugin that imports anything not in
// [AllowList] is rejected by package plugins before any of its code runs.
// The WASI functions that are allowed see nothing real, because package
// plugins instantiates guests with a [SandboxConfig]: no preopened
// directories, no arguments, no environment, no sockets, fake clocks that
// advance 1 ms per read, a no-op sleep and a deterministic random source.
// Guest stdout and stderr go to a bounded writer the caller supplies.
//
// env.errclass_log strips control characters, passes each line through
// the caller's redaction ([CallLog.SetRedact]: hostfuncs cannot know the
// secrets) before truncating it, charges a per-call allowance ([CallLog],
// reset by the caller for every classification) and logs to slog with the
// plugin id.
//
// hostfuncs imports only the standard library and wazero.
//
// Entry points:
//   - [AllowList] and [Allowed]: the import allow-list, each entry with its reason.
//   - [Instantiate]: link env and WASI into the wazero.Runtime of one plugin.
//   - [SandboxConfig]: the module configuration every guest instance gets.
//   - [CallLog] and [WithCallLog]: the per-call log allowance.
package hostfuncs
