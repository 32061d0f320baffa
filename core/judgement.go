package core

import (
	"errors"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
)

// The one judgement of whether an account can serve a request is
// policy.Judge (BEHAVIOUR.md §5.1). This file builds what it reads: an
// account's stored data as a policy.Subject, and the outcome of the I/O
// the engine did as plain facts (policy.IOFailure), read from the errors
// here so that the policy never sees core's error types.

// RouteKind is the kind of an account: the host's main account, an OAuth
// fallback, an API-key route, or an entry of a type acctpool does not know
// (listed, never routed). The server derives it from the snapshot by id; a
// kind a host echoes back is never trusted.
type RouteKind = policy.RouteKind

// The route kinds.
const (
	KindUnknown = policy.KindUnknown
	KindMain    = policy.KindMain
	KindOAuth   = policy.KindOAuth
	KindAPI     = policy.KindAPI
)

// failureOf reads the facts the judgement and the report plan need from
// the error of a token refresh or usage poll; nil is no failure.
func failureOf(err error) policy.IOFailure {
	if err == nil {
		return policy.IOFailure{}
	}
	return policy.IOFailure{Failed: true, Message: err.Error(), Until: errUntil(err), Transient: transientQuotaError(err), NeedsRelogin: errors.Is(err, ErrInvalidGrant)}
}

// transientQuotaError reports whether err is a usage-endpoint failure
// that says nothing about the account (rate limit, 5xx, network, a
// concurrent check).
func transientQuotaError(err error) bool {
	var ue *UpstreamError
	if errors.As(err, &ue) {
		return ue.Failure.Source == verdict.SourceUsage && (ue.Verdict.Class == verdict.ClassRateLimited || ue.Verdict.Class == verdict.ClassTransient)
	}
	var be *BackoffError
	if errors.As(err, &be) {
		return be.Kind == ErrQuotaBackoff
	}
	return errors.Is(err, ErrInProgress)
}

// mainSubject is main as the judgement sees it.
func mainSubject(snap *Snapshot, creds MainCredentials, has bool) policy.Subject {
	return policy.Subject{
		ID: MainAccountID, Kind: KindMain, Enabled: true, Identity: mainIdentity(snap), HasCredential: has,
		Access: creds.Access, Refresh: creds.Refresh, Expires: creds.Expires,
		RefreshError: snap.Main.LastRefreshError, Quota: mainQuota(snap), QuotaError: snap.Main.LastQuotaAPIError,
		Spent: snap.Main.RateLimited,
	}
}

// accountSubject is a fallback as the judgement sees it.
func accountSubject(a *Account) policy.Subject {
	k := KindUnknown
	switch a.Type {
	case record.AccountOAuth:
		k = KindOAuth
	case record.AccountAPI:
		k = KindAPI
	}
	return policy.Subject{
		ID: a.ID, Kind: k, Order: a.Order + 1, Problem: a.Problem, Enabled: a.IsEnabled(), Identity: a.ID, HasCredential: true,
		Access: a.State.Access, Refresh: a.State.Refresh, Expires: a.State.Expires,
		RefreshError: a.State.LastRefreshError, Quota: a.State.Quota, QuotaError: a.State.LastQuotaRefreshError,
		Spent: a.State.RateLimited,
	}
}

// kindOf derives an account's kind from the snapshot by id.
func kindOf(snap *Snapshot, id string) RouteKind {
	if id == MainAccountID {
		return KindMain
	}
	if a, ok := snap.Account(id); ok && a.ID == id {
		return accountSubject(a).Kind
	}
	return KindUnknown
}

// mainQuota returns the stored main snapshot if it belongs to the current
// main identity.
func mainQuota(snap *Snapshot) *record.QuotaSnapshot {
	q := snap.Main.Quota
	if q == nil {
		return nil
	}
	switch q.AccountIdentity {
	case "", MainAccountID, mainIdentity(snap):
		return q
	}
	if p := storedProfile(snap.Main); p != nil && p.ProviderAccountUUID != "" && q.AccountIdentity == p.ProviderAccountUUID {
		// Bound to the Claude account of main's token (BEHAVIOUR.md §3.7),
		// as upstream writes it.
		return q
	}
	return nil
}
