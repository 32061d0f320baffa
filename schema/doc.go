// Package schema holds the machine-readable description of acctpool's
// JSON-RPC surface: an OpenRPC 1.x document (openrpc.json) naming every
// method with the JSON Schemas of its params and result, the error codes
// and examples, embedded with go:embed so that the server answers
// rpc.discover with the exact bytes this package ships.
//
// schema imports only the standard library, so the server links nothing
// else for it. Validation against the document lives in schema/validate.
//
// Entry point: [OpenRPC] (the raw document).
package schema
