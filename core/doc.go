// Package core is the domain of acctpool: accounts, quota snapshots, operation
// errors and their backoff, the built-in error classifier and its effects
// table, thresholds, the killswitch, routing, the background passes, the file
// store with its lock protocol, and the Anthropic HTTP clients.
//
// core imports only the standard library, goccy/go-json and its own leaf
// packages. It never imports
// rpc, plugins or wazero: those packages call core, never the reverse.
// Everything that needs time reads it from a [Clock], so tests move time by
// hand and never sleep.
//
// Entry points:
//   - core/verdict: failures, verdicts, the built-in classifier and the
//     effects table of BEHAVIOUR.md §4 (a leaf the plugins import instead of
//     core); core applies the table in one place (effectFor).
//   - [Store]: load and save anthropic-auth.json and anthropic-auth-state.json
//     in the upstream shapes, under the upstream lock-file protocol.
//   - [Engine]: token refresh, quota checks, background passes and routing,
//     the object the JSON-RPC server drives.
//   - core/secret: the Secret type and Redact, the one function that strips
//     secrets from text; core/millis: the one range-checked millisecond
//     conversion.
package core
