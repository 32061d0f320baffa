// Package schema holds the machine-readable description of acctpool's
// JSON-RPC surface: an OpenRPC 1.x document (openrpc.json) naming every
// method with the JSON Schemas of its params and result, the error codes
// and examples, embedded with go:embed so that the server can answer
// rpc.discover with the exact bytes this package ships.
//
// schema imports only the standard library and the JSON Schema validator
// (santhosh-tekuri/jsonschema). It is imported by rpc (to serve the
// document) and by tests (to check that what the server produced matches
// what the document promises).
//
// Entry points: [OpenRPC] (the raw document) and [ValidateResult].
package schema
