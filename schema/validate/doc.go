// Package validate checks JSON against the schemas of schema/openrpc.json:
// a method's params and result, and the data of a domain error. The
// conformance runner validates every response it receives with it, so the
// document and the server cannot drift apart.
//
// It imports santhosh-tekuri/jsonschema; the server itself imports only
// package schema (the embedded document) and so does not link it.
package validate
