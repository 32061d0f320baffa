// Package record holds the documents acctpool shares with the upstream
// plugin, in their upstream shapes: anthropic-auth.json ([ConfigFile],
// [AccountConfig]), anthropic-auth-state.json ([StateFile], [MainState],
// [AccountState]) with the records inside them ([QuotaSnapshot],
// [QuotaWindow], [OpError]), and anthropic-auth-routing-state.json
// ([RoutingStateFile], [RoutingAssignment]).
//
// Each document decodes in one pass over its bytes (decode.go, on the
// scanner of core/internal/jsonscan) and encodes each object once
// (encode.go; [EncodeFile] for the indented file layout). Keys a document
// does not model survive in [Extra] at every level and are written back
// verbatim, after the known ones, sorted; a known key whose value has the
// wrong type falls back to its default and is kept raw for the warnings,
// instead of making the file unreadable (BEHAVIOUR.md §1.2). Only bad
// syntax is an error, located by line and column ([JSONErrorAt]).
//
// The engine and every store backend import it; it imports only the
// standard library, goccy/go-json, core/internal/jsonscan and the leaf
// packages (core/secret, core/verdict, core/millis).
package record
