package verdict

// RefreshBackoffKind is how a failure arms refresh backoff.
type RefreshBackoffKind int

// The refresh backoff kinds of the effects table.
const (
	// RefreshBackoffNone arms nothing.
	RefreshBackoffNone RefreshBackoffKind = iota
	// RefreshBackoffLong waits 24 h (Retry-After if given); not permanent.
	RefreshBackoffLong
	// RefreshBackoffPermanent waits 24 h and marks the account for re-login.
	RefreshBackoffPermanent
	// RefreshBackoffTransient honours Retry-After, else 5 min for network
	// errors and 5 min doubling to 60 min for 429/5xx.
	RefreshBackoffTransient
)

// QuotaBackoffKind is how a failure arms the per-account quota backoff.
type QuotaBackoffKind int

// The quota backoff kinds of the effects table.
const (
	// QuotaBackoffNone arms nothing.
	QuotaBackoffNone QuotaBackoffKind = iota
	// QuotaBackoffTransient waits 60 s doubling to 15 min.
	QuotaBackoffTransient
	// QuotaBackoffFlat waits 5 min.
	QuotaBackoffFlat
)

// Effect is what a verdict does to an account: the row of the effects table
// for its (source, class). Every path that records a failure asks [EffectOf]
// and does what the row says, so the table below is the single place where
// classification turns into state.
type Effect struct {
	RefreshBackoff RefreshBackoffKind
	QuotaBackoff   QuotaBackoffKind
	// PersistRefreshError records lastRefreshError.
	PersistRefreshError bool
	// PersistQuotaError records lastQuotaRefreshError.
	PersistQuotaError bool
	// RefreshAndRetry asks for one forced token refresh and one retry; the
	// quota error is persisted only if the retry fails too.
	RefreshAndRetry bool
	// Fallback moves a replayable request to the next routable account
	// (messages only; fallbackOn narrows or widens it, see policy.EffectFor).
	Fallback bool
	// ProbeQuota asks for a fresh usage poll of the account before the
	// request moves: it confirms main's exhaustion (which opens API-key
	// routes) and decides whether a sticky session holds, migrates or
	// keeps its account (messages rate limits only).
	ProbeQuota bool
	// InQuotaPass is how a token-endpoint failure that happens inside a
	// quota pass (refreshing an expired token before polling) arms the
	// account's quota error as well, as upstream's quota recorder does.
	InQuotaPass QuotaBackoffKind
}

type effectKey struct {
	source Source
	class  Class
}

// effects is the classification effects table (BEHAVIOUR.md §4.2). It is
// the heart of acctpool: the PR #86 fix lives in the difference between the
// token/org_policy row (arms 24 h refresh backoff) and the usage/org_policy
// row (arms nothing, persists nothing).
var effects = map[effectKey]Effect{
	{SourceToken, ClassInvalidGrant}: {RefreshBackoff: RefreshBackoffPermanent, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat},
	{SourceToken, ClassOrgPolicy}:    {RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat},
	{SourceToken, ClassAuthExpired}:  {RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat},
	{SourceToken, ClassClientError}:  {RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat},
	{SourceToken, ClassRateLimited}:  {RefreshBackoff: RefreshBackoffTransient, PersistRefreshError: true, InQuotaPass: QuotaBackoffTransient},
	{SourceToken, ClassTransient}:    {RefreshBackoff: RefreshBackoffTransient, PersistRefreshError: true, InQuotaPass: QuotaBackoffTransient},

	{SourceUsage, ClassAuthExpired}:  {RefreshAndRetry: true, QuotaBackoff: QuotaBackoffFlat, PersistQuotaError: true},
	{SourceUsage, ClassOrgPolicy}:    {},
	{SourceUsage, ClassInvalidGrant}: {},
	{SourceUsage, ClassRateLimited}:  {QuotaBackoff: QuotaBackoffTransient, PersistQuotaError: true},
	{SourceUsage, ClassTransient}:    {QuotaBackoff: QuotaBackoffTransient, PersistQuotaError: true},
	{SourceUsage, ClassClientError}:  {QuotaBackoff: QuotaBackoffFlat, PersistQuotaError: true},

	{SourceMessages, ClassAuthExpired}:  {RefreshAndRetry: true, Fallback: true},
	{SourceMessages, ClassOrgPolicy}:    {Fallback: true},
	{SourceMessages, ClassInvalidGrant}: {Fallback: true},
	{SourceMessages, ClassRateLimited}:  {Fallback: true, ProbeQuota: true},
	{SourceMessages, ClassTransient}:    {},
	{SourceMessages, ClassClientError}:  {},
}

// EffectOf returns the effects-table row for a failure at source classified
// as v. An unknown pair has no effect.
//
// # Notes
//
// The usage/auth_expired row arms the 5-minute quota backoff and persists
// lastQuotaRefreshError only after its forced refresh and retry have failed
// too; the caller does the retry first. For the messages source, the
// engine reads the row through policy.EffectFor, which applies fallbackOn, and
// the report plan decides what follows (a request that cannot be replayed
// never moves).
func EffectOf(source Source, v Verdict) Effect { return effects[effectKey{source, v.Class}] }
