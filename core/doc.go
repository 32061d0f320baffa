// Package core is the domain of acctpool: accounts, operation errors and
// their backoff, thresholds, the killswitch, routing, the background passes
// and the store (its file I/O and lock protocol are core/internal/filestore).
// The classification vocabulary and effects table are core/verdict, the
// documents in their upstream shapes core/record, and the Anthropic HTTP
// client core/internal/anthropic.
//
// core imports only the standard library, goccy/go-json and its own
// packages. It never imports rpc, plugins, wazero or the PostgreSQL store
// (core/pgstore): those packages call core, never the reverse.
// Everything that needs time reads it from a [Clock], so tests move time by
// hand and never sleep.
//
// Entry points:
//   - core/verdict: failures, verdicts, the built-in classifier and the
//     effects table of BEHAVIOUR.md §4 (a leaf the plugins import instead of
//     core); core applies the table in one place (policy.EffectFor).
//   - [Store]: load and save anthropic-auth.json and anthropic-auth-state.json
//     in the upstream shapes, under the upstream lock-file protocol.
//   - [Engine]: token refresh, quota checks, background passes and routing,
//     the object the JSON-RPC server drives.
//   - core/secret: the Secret type and Redact, the one function that strips
//     secrets from text; core/millis: the one range-checked millisecond
//     conversion.
package core
