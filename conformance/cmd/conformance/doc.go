// Command conformance runs acctpool's conformance suite against a server
// command and reports each case for people and for CI.
//
// Usage:
//
//	go run ./conformance/cmd/conformance [--server CMD] [--cases DIR] [--run REGEX]
//	    [--tags LIST] [--list] [--junit FILE] [--json] [-v]
//	go run github.com/acctpool/acctpool/conformance/cmd/conformance@VERSION --server CMD
//
// It prints a header (suite version, number of cases, the server command
// and what its --version printed), one line per case with its title and
// duration, the failing step and a want/got diff under a failed case, and
// the closing line "N passed, N failed". --junit FILE also writes JUnit
// XML; --json prints the report as JSON instead of lines; --list prints
// the selected cases' ids, tags and titles without running them.
//
// Without --server it builds ./cmd/stdio-server of the acctpool checkout
// it runs in; anywhere else --server is required. CMD is split on spaces;
// the runner appends --config, --state, --token-url, --usage-url,
// --profile-url, --clock manual and --log-level (the contract is in
// conformance/README.md). Without --cases it runs the cases embedded in
// package conformance.
//
// The exit status is 0 when every selected case passed (pending cases do
// not fail), 1 when a case failed, and 2 for a usage error or a selection
// (--run, --tags) that matched no case.
package main
