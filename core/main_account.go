package core

import (
	"context"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// mainIdentity is the stable identity that binds the main account's
// backoffs: the config's mainAccountId, or "main" before one is minted.
func mainIdentity(snap *Snapshot) string {
	if snap.Config != nil && snap.Config.MainAccountID != "" {
		return snap.Config.MainAccountID
	}
	return MainAccountID
}

// mainCredentials returns the host's main tokens, if handed over.
func (e *Engine) mainCredentials() (MainCredentials, bool) {
	e.mainMu.Lock()
	defer e.mainMu.Unlock()
	if e.main == nil {
		return MainCredentials{}, false
	}
	return *e.main, true
}

func (e *Engine) setMainCredentials(c MainCredentials) {
	e.mainMu.Lock()
	e.main = &c
	e.mainMu.Unlock()
}

// ensureMainFresh returns usable main credentials for a request: it
// refreshes when the access token is expired, or when rejected is the
// current access token (the upstream said 401). If another caller already
// replaced a rejected token, that one is returned without a token call.
func (e *Engine) ensureMainFresh(ctx context.Context, rejected secret.Secret) (MainCredentials, error) {
	c, ok := e.mainCredentials()
	if !ok {
		return c, ErrNoMain
	}
	now := e.now()
	if rejected != "" && c.Access != rejected && !policy.Expired(c.Access, c.Expires, now) {
		return c, nil
	}
	if rejected == "" && !policy.Expired(c.Access, c.Expires, now) {
		return c, nil
	}
	return e.refreshMain(ctx, rejected != "")
}

// refreshMain refreshes the main token when it is due (or always, with
// force) and returns the credentials the host now holds (see
// [Engine.refresh]).
func (e *Engine) refreshMain(ctx context.Context, force bool) (MainCredentials, error) {
	a, err := e.refresh(ctx, MainAccountID, force, false)
	if err != nil {
		return MainCredentials{}, err
	}
	return a.tokens.main(), nil
}

// hostSource is the credential source of the main account: the host keeps
// its tokens and hands them over with accounts/setMain; a rotation goes
// back to the host through EventMainRefreshed (accounts/mainRefreshed).
type hostSource struct{ e *Engine }

func (hostSource) refreshLock(string) (string, time.Duration, time.Duration) {
	return mainRefreshLock, mainRefreshLockTTL, mainRefreshLockWait
}

func (s hostSource) bindQuota(ctx context.Context, snap *Snapshot, a oauthAccount) (oauthAccount, error) {
	return s.e.bindMainQuota(ctx, snap, a)
}

func (hostSource) quotaLock(string) string { return mainQuotaLock }

func (hostSource) lockBusy(_ context.Context, _ oauthAccount, _ bool, err error) (oauthAccount, error) {
	return oauthAccount{}, errorf(ErrInProgress, "Claude OAuth refresh is already in progress%s", lockHolder(err))
}

// dueForUse: main's token is refreshed for use only once expired; before
// that the host (or the refresh pass) renews it.
func (hostSource) dueForUse(t tokenPair, _ time.Duration, now time.Time) bool {
	return policy.Expired(t.Access, t.Expires, now)
}

func (hostSource) latchesNetwork() bool { return false }

// rotate calls the token endpoint with the main refresh token, hands the
// new pair to the host (EventMainRefreshed) and clears the persisted main
// refresh error. Main records no quota error for a token failure, so
// inQuotaPass is not passed on.
func (s hostSource) rotate(ctx context.Context, a oauthAccount, _, _ bool) (oauthAccount, error) {
	e := s.e
	used, usedAccess := a.tokens.Refresh, a.tokens.Access
	postCtx, cancelPost := context.WithTimeout(ctx, rotationTimeout)
	grant, failure, err := e.api.Refresh(postCtx, used, a.tokens.Access)
	cancelPost()
	if err != nil {
		return oauthAccount{}, err
	}
	if failure != nil {
		return oauthAccount{}, e.recordRefreshFailure(ctx, a, used, *failure, false)
	}
	now := e.now()
	var st record.AccountState
	applyGrant(&st, grant, used, now)
	next := MainCredentials{Access: st.Access, Refresh: st.Refresh, Expires: st.Expires}
	e.setMainCredentials(next)
	// The host stores the main pair: hand it over before anything that
	// could fail.
	e.emit(Event{Kind: EventMainRefreshed, Accounts: []string{MainAccountID}, Main: &next})
	a.tokens = tokenPair{Access: next.Access, Refresh: next.Refresh, Expires: next.Expires}
	a.refreshErr = nil
	saveCtx, cancelSave := context.WithTimeout(ctx, saveTimeout)
	defer cancelSave()
	if _, err := e.store.UpdateState(saveCtx, func(st *record.StateFile) error {
		m := ensureMain(st)
		rebindProfile(m, usedAccess, next.Access)
		if m.LastRefreshError != nil {
			m.LastRefreshError = nil
			m.RefreshErrorClearedAt = epochMs(now)
		}
		return nil
	}); err != nil {
		e.log.Warn("main token refreshed but its error record could not be cleared", "err", err)
		return a, nil
	}
	e.log.Info("refreshed main token")
	return a, nil
}
