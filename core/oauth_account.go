package core

import (
	"context"
	"errors"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// tokenPair is the OAuth credential of one account, wherever it is kept.
type tokenPair struct {
	Access  secret.Secret
	Refresh secret.Secret
	// Expires is the access token's expiry, epoch ms.
	Expires int64
}

func (t tokenPair) main() MainCredentials {
	return MainCredentials{Access: t.Access, Refresh: t.Refresh, Expires: t.Expires}
}

// oauthAccount is one OAuth account as the refresh and quota code sees it.
// Main is an account like any other; only its credential source differs
// (the host keeps main's tokens, the state file a fallback's), so one
// refresh, one quota fetch, one store and one failure recorder serve all.
type oauthAccount struct {
	// id is MainAccountID or the fallback's id: the account in views,
	// events and errors.
	id string
	// identity binds the account's refresh backoff (BEHAVIOUR.md §2.5):
	// mainAccountId for main, the id for a fallback.
	identity string
	// quotaIdentity is what its quota snapshot is bound to: the Claude
	// account UUID of main's token (or mainAccountId, BEHAVIOUR.md §3.7),
	// a fallback's id.
	quotaIdentity string
	tokens        tokenPair
	refreshErr    *record.OpError
	quotaErr      *record.OpError
	// quota is the account's cached quota snapshot, if any.
	quota *record.QuotaSnapshot
	// fallback is the fallback as the store sees it; nil for main.
	fallback *Account
	src      credentialSource
}

// credentialSource is where an account's tokens come from and where a
// rotation goes. Everything else about refreshing is the same for every
// account and lives in [Engine.refresh].
type credentialSource interface {
	// refreshLock names the account's refresh lock (BEHAVIOUR.md §1.7).
	refreshLock(id string) (name string, ttl, wait time.Duration)
	// quotaLock names the account's quota-poll lock (BEHAVIOUR.md §1.7).
	quotaLock(id string) string
	// lockBusy answers a refresh whose lock another process held for the
	// whole wait (err is the lock timeout).
	lockBusy(ctx context.Context, a oauthAccount, force bool, err error) (oauthAccount, error)
	// rotate posts the refresh token and hands the answer to where the
	// tokens are kept. It runs detached from the caller, under the lock:
	// once the endpoint answered, the answer must persist.
	rotate(ctx context.Context, a oauthAccount, force, inQuotaPass bool) (oauthAccount, error)
	// bindQuota settles what the account's quota is bound to before a
	// poll (main: the Claude account of its token, BEHAVIOUR.md §3.7).
	bindQuota(ctx context.Context, snap *Snapshot, a oauthAccount) (oauthAccount, error)
	// dueForUse reports whether a token must be refreshed before the
	// account makes a usage call with it.
	dueForUse(t tokenPair, window time.Duration, now time.Time) bool
	// latchesNetwork reports whether a network failure of the token call
	// is recorded as a refresh error (BEHAVIOUR.md §2.5: not on main).
	latchesNetwork() bool
}

// oauthAccount loads account id (MainAccountID or a fallback) for refresh
// and quota work.
func (e *Engine) oauthAccount(ctx context.Context, id string) (*Snapshot, oauthAccount, error) {
	if id == MainAccountID {
		c, ok := e.mainCredentials()
		if !ok {
			return nil, oauthAccount{}, ErrNoMain
		}
		snap, err := e.store.Load(ctx)
		if err != nil {
			return nil, oauthAccount{}, err
		}
		return snap, mainAccount(snap, c, e), nil
	}
	snap, a, err := e.loadOAuth(ctx, id)
	if err != nil {
		return nil, oauthAccount{}, err
	}
	return snap, fallbackAccount(a, e), nil
}

func mainAccount(snap *Snapshot, c MainCredentials, e *Engine) oauthAccount {
	quotaID, _ := mainQuotaIdentity(snap, c.Access, e.now())
	return oauthAccount{
		id: MainAccountID, identity: mainIdentity(snap), quotaIdentity: quotaID,
		tokens:     tokenPair{Access: c.Access, Refresh: c.Refresh, Expires: c.Expires},
		refreshErr: snap.Main.LastRefreshError, quotaErr: snap.Main.LastQuotaAPIError, quota: mainQuota(snap),
		src: hostSource{e},
	}
}

func fallbackAccount(a *Account, e *Engine) oauthAccount {
	return oauthAccount{
		id: a.ID, identity: a.ID, quotaIdentity: a.ID,
		tokens:     tokenPair{Access: a.State.Access, Refresh: a.State.Refresh, Expires: a.State.Expires},
		refreshErr: a.State.LastRefreshError, quotaErr: a.State.LastQuotaRefreshError, quota: a.State.Quota,
		fallback: a, src: stateFileSource{e},
	}
}

// refresh refreshes the token of account id when it is due (or always,
// with force), honouring its refresh backoff, under its refresh lock, and
// hands the new pair to its credential source. Concurrent calls in the
// process share one token call; across processes the lock makes exactly
// one process call the endpoint. inQuotaPass also records a failure as the
// account's quota error, as upstream's quota recorder does.
func (e *Engine) refresh(ctx context.Context, id string, force, inQuotaPass bool) (oauthAccount, error) {
	if mustWait(ctx) {
		return oauthAccount{}, ErrWouldWait
	}
	var out oauthAccount
	ran := false
	err := e.singleFlight(ctx, "refresh:"+id, func() error {
		a, err := e.refreshLocked(ctx, id, force, inQuotaPass)
		out, ran = a, true
		return err
	})
	if err != nil {
		return oauthAccount{}, err
	}
	if !ran {
		// We joined another caller's flight: read its result.
		_, a, err := e.oauthAccount(ctx, id)
		return a, err
	}
	return out, nil
}

func (e *Engine) refreshLocked(ctx context.Context, id string, force, inQuotaPass bool) (oauthAccount, error) {
	snap, a, err := e.oauthAccount(ctx, id)
	if err != nil {
		return oauthAccount{}, err
	}
	if a.tokens.Refresh == "" {
		return oauthAccount{}, errorf(ErrConfigInvalid, "Token refresh failed: missing refresh token")
	}
	now := e.now()
	if !force && !policy.NeedsRefresh(a.tokens.Access, a.tokens.Expires, snap.Settings.RefreshBeforeExpiry, now) {
		return a, nil
	}
	if until, ok := refreshLatched(a.refreshErr, a.identity, a.tokens.Refresh, now); ok {
		return oauthAccount{}, &BackoffError{Account: a.id, Kind: ErrRefreshBackoff, Record: a.refreshErr, Until: until, Now: now}
	}
	name, ttl, wait := a.src.refreshLock(a.id)
	ctx, release, err := e.acquireRefresh(ctx, a, name, ttl, wait)
	if err != nil {
		if errors.Is(err, ErrLockTimeout) {
			return a.src.lockBusy(ctx, a, force, err)
		}
		return oauthAccount{}, err
	}
	// From here on the work is detached from ctx: once the token call has
	// started, the old refresh token may be consumed, and only the saved
	// answer keeps the account. The caller may give up; the rotation
	// finishes and saves under its own deadline, and releases the lock.
	return runDetached(e, ctx, "refresh "+a.id, func(ctx context.Context) (oauthAccount, error) {
		defer release()
		return a.src.rotate(ctx, a, force, inQuotaPass)
	})
}

// records points at the parts of the state file that belong to one
// account, so that storing a quota snapshot or an error record is one
// piece of code for every account: main's live in the file's main
// section, a fallback's in its accounts entry.
type records struct {
	quota       **record.QuotaSnapshot
	refreshErr  **record.OpError
	quotaErr    **record.OpError
	rateLimited **record.SpentWindows
	// refresh is the refresh token the file holds; nil for main, whose
	// tokens the host keeps.
	refresh *secret.Secret
	// main is the main section (its quota bookkeeping); nil for a fallback.
	main *record.MainState
}

// recordsIn returns the records of account id in st, creating a missing
// fallback entry when create is set; nil when the entry is missing.
func recordsIn(st *record.StateFile, id string, create bool) *records {
	if id == MainAccountID {
		m := ensureMain(st)
		return &records{quota: &m.Quota, refreshErr: &m.LastRefreshError, quotaErr: &m.LastQuotaAPIError, rateLimited: &m.RateLimited, main: m}
	}
	s := st.Accounts[id]
	if s == nil {
		if !create {
			return nil
		}
		s = &record.AccountState{}
		st.Accounts[id] = s
	}
	return &records{quota: &s.Quota, refreshErr: &s.LastRefreshError, quotaErr: &s.LastQuotaRefreshError, rateLimited: &s.RateLimited, refresh: &s.Refresh}
}

// quotaErrCleared drops the quota error, keeping main's tombstone (when it
// was cleared, and the error generation) that upstream reads.
func (r *records) quotaErrCleared(now time.Time) {
	if m := r.main; m != nil && m.LastQuotaAPIError != nil {
		m.QuotaErrorClearedAt = epochMs(now)
		m.QuotaErrorGeneration++
	}
	*r.quotaErr = nil
}

// quotaStored clears the quota error after a successful poll with access,
// keeping main's bookkeeping (the token the snapshot came from, the
// error generation and its tombstone) that upstream reads.
func (r *records) quotaStored(access secret.Secret, now time.Time) {
	if m := r.main; m != nil {
		m.QuotaCheckedAt = epochMs(now)
		m.QuotaToken = access.Fingerprint()
	}
	r.quotaErrCleared(now)
}

// quotaFailed records a quota error, counting main's error generation.
func (r *records) quotaFailed(rec *record.OpError) {
	*r.quotaErr = rec
	if r.main != nil {
		r.main.QuotaErrorGeneration++
	}
}

// quotaErrIdentity is the identity a quota error record of a is bound to:
// main's quota identity, none for a fallback (whose record sits in its
// own entry), as upstream writes them.
func quotaErrIdentity(a oauthAccount) string {
	if a.fallback == nil {
		return a.quotaIdentity
	}
	return ""
}

func ensureMain(st *record.StateFile) *record.MainState {
	if st.Main == nil {
		st.Main = &record.MainState{}
	}
	return st.Main
}
