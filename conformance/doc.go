// Package conformance is acctpool's language-neutral conformance suite: the
// cases (cases/*.json, embedded as [Cases]), a fake of Anthropic's token,
// usage, profile and messages endpoints ([Fake]), and the runner ([Run])
// that replays each case against a server binary.
//
// The runner talks to the server only through the stdin and stdout of a
// spawned process (LSP Content-Length framing), so it can test any
// implementation of the protocol, not only this module's. It starts the
// server with --token-url, --usage-url and --profile-url pointing at the
// fake, --clock manual, and --config / --state in a temporary directory;
// every result the server returns is validated against its method's result
// schema in package schema.
//
// conformance imports schema, its own conformance/junit (JUnit XML, shared
// with `acctpool plugin check`) and the standard library (plus testify in
// tests). The command is conformance/cmd/conformance; the case format is
// documented in README.md.
package conformance
