// Package policy holds the pure decisions the engine asks before and after
// its I/O: the one judgement of whether an account can serve a request
// ([Judge] over a [Subject] and a [Need], answering a [Judgement]; the
// sticky keep, new-session and hold decisions among them, [StickyDecision]
// for a fresh snapshot), the settings it reads ([Settings], [Thresholds],
// [KillswitchSettings]), the typed reasons an account cannot serve
// ([Reason]), an account's [RouteKind], whether a snapshot is stale
// ([QuotaStale]) or passes quota.minimumRemaining ([QuotaPassesPolicy],
// [PolicyFailure]), the killswitch ([KillswitchFailure],
// [KillswitchRetryAfter]), model scopes ([ScopedWindowFor],
// [ModelScopeExhausted]) and the refresh and quota backoff latches
// ([RefreshBackoffActive], [QuotaBackoffActive]), and the sticky-balanced
// allocator ([AllocateBy], [StickyWeight]). Every function is a pure
// function of its arguments and the time it is given; the outcome of I/O
// reaches it as plain facts ([Tried], [IOFailure]) that core reads from
// its errors, never as error values. The one report plan ([PlanReport],
// with [EffectFor], the one place a status code meets the effects table)
// decides what a failed response leads to.
//
// It may import the standard library and core's leaf and document
// packages (core/record, core/secret, core/verdict); only core imports it.
package policy
