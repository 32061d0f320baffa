// Command conformance runs acctpool's conformance suite against a server
// binary and prints one line per case and a closing "N passed, N failed".
//
// Usage:
//
//	go run ./conformance/cmd/conformance [--server CMD] [--cases DIR] [--run REGEX] [--json] [-v]
//
// Without --server it builds ./cmd/stdio-server of this module into a
// temporary directory and tests that. CMD is split on spaces; the runner
// appends --config, --state, --token-url, --usage-url, --profile-url,
// --clock manual and --log-level. Without --cases it runs the cases
// embedded in package conformance. --json prints the report as JSON
// instead of lines. The exit status is 1 when any case fails.
package main
