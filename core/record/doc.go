// Package record holds the documents acctpool shares with the upstream
// plugin, in their upstream shapes: anthropic-auth.json ([ConfigFile],
// [AccountConfig]) and anthropic-auth-state.json ([StateFile], [MainState],
// [AccountState]) with the records inside them ([QuotaSnapshot],
// [QuotaWindow], [OpError]). Keys a document does not model survive in
// [Extra] and are written back verbatim ([DecodeWithExtra],
// [EncodeWithExtra]); a value of the wrong type falls back to its default
// instead of making the file unreadable (BEHAVIOUR.md §1.2).
//
// The engine and every store backend import it; it imports only the
// standard library, goccy/go-json and the leaf packages (core/secret,
// core/verdict, core/millis).
package record
