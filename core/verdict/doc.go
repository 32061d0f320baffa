// Package verdict is the vocabulary of failure classification, shared by the
// engine and the plugin host: what failed ([Failure], keyed by [Source]),
// what it is ([Verdict], a [Class] decided by a [Classifier]; the built-in
// table is [ClassifyBuiltin]), and what that does to an account ([EffectOf],
// the effects table of BEHAVIOUR.md §4.2, and the one backoff schedule each
// for token refreshes and usage polls, [RefreshBackoffDelay] and
// [QuotaBackoffDelay], BEHAVIOUR.md §2.5 and §3.5).
//
// It is a leaf: it imports the standard library, goccy/go-json and
// core/millis only, so plugins and their ABI classify failures without
// importing the engine (scripts/test checks both arrows).
package verdict
