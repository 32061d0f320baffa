// Package policy holds the pure decisions about quota and backoff that the
// engine asks before and after its I/O: the settings they read
// ([Settings], [Thresholds], [KillswitchSettings]), the typed reasons an
// account cannot serve ([Reason]), whether a snapshot is stale
// ([QuotaStale]) or passes quota.minimumRemaining ([QuotaPassesPolicy],
// [PolicyFailure]), the killswitch ([killswitchPasses], [KillswitchFailure],
// [KillswitchRetryAfter]), model scopes ([ScopedWindowFor],
// [ModelScopeExhausted]) and the refresh and quota backoff latches
// ([RefreshBackoffActive], [QuotaBackoffActive]), and the sticky-balanced
// allocator ([AllocateBy], [StickyWeight]). Every function is a pure
// function of its arguments and the time it is given.
//
// It may import the standard library and core's leaf and document
// packages (core/record, core/secret, core/verdict); only core imports it.
// The one judgement (core/judgement.go), the sticky decisions and the
// report plan still live in core (issue 13, item 4).
package policy
