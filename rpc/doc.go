// Package rpc is the JSON-RPC 2.0 server of acctpool: the framing (LSP
// Content-Length by default, NDJSON on request), a hardened stream in front
// of github.com/sourcegraph/jsonrpc2 that answers malformed input instead of
// dropping the connection, the LSP-style lifecycle, dispatch to the
// [core.Engine] through a method table, cancellation, error mapping and
// server→host notifications.
//
// rpc may import core, schema, sourcegraph/jsonrpc2 and
// goccy/go-json. It holds no domain rules: handlers decode params, call the
// engine and encode the result; errors.go alone knows error codes.
//
// Entry points: [New] builds a [Server] from [Options]; [Server.Serve] runs
// it over a reader and a writer (stdin and stdout in cmd/stdio-server) and
// returns the exit code. [Notifier] carries engine events to the host.
//
// The files follow the concepts: frame.go (codecs and resynchronisation),
// jsonscan.go (the incremental JSON syntax check that finds where a
// message really ends), stream.go (the hardened ObjectStream), dispatch.go (inline and async lanes, params decoding),
// methods.go (the table and thin handlers), lifecycle.go, cancel.go,
// notify.go, errors.go.
package rpc
