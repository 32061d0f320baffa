// Package sdk is the guest side of ABI "errclass v1" for plugins written
// in Go: the author writes one function and registers it, and the SDK
// provides the exports, the buffers and the JSON.
//
//	package main
//
//	import "github.com/acctpool/acctpool/plugins/sdk"
//
//	func init() { sdk.Handle(Classify) }
//
//	// Classify treats 403s of one organisation as invalid_grant.
//	func Classify(in sdk.Input) (sdk.Verdict, bool) {
//		if in.Status != 403 || in.Headers["anthropic-organization-id"] != "org-123" {
//			return sdk.Verdict{}, false // no opinion: the built-in verdict stands
//		}
//		v := in.Builtin
//		v.Class, v.Reason = sdk.ClassInvalidGrant, "org-123 revoked our grant"
//		return v, true
//	}
//
//	func main() {}
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -ldflags="-s -w" -trimpath -o plugin.wasm .
//
// # Notes
//
// The SDK parses and writes JSON by hand (encoding/json is 20x slower in
// wasm), reuses its input and output buffers, and yields to the Go
// scheduler once per call so the garbage collector runs: an export runs
// on one goroutine, and without the yield guest memory grows with every
// call until the host discards the instance. Do not start goroutines or
// block in Classify; the host gives each call a deadline (50 ms by
// default). There is no clock, randomness, filesystem or network.
//
// The wasm exports live in a wasip1-only file; the types and the JSON
// code build everywhere, so they are tested on the host.
package sdk
