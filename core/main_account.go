package core

import (
	"context"
	"errors"
	"fmt"
	"time"
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
func (e *Engine) ensureMainFresh(ctx context.Context, rejected Secret) (MainCredentials, error) {
	c, ok := e.mainCredentials()
	if !ok {
		return c, ErrNoMain
	}
	now := e.now()
	if rejected != "" && c.Access != rejected && !expired(c.Access, c.Expires, now) {
		return c, nil
	}
	if rejected == "" && !expired(c.Access, c.Expires, now) {
		return c, nil
	}
	return e.refreshMain(ctx, rejected != "")
}

// refreshMain refreshes the main token when it is due (or always, with
// force), under the main refresh lock, and hands the new tokens to the host
// through EventMainRefreshed. Failures are persisted in the state file's
// main section as the effects table says.
func (e *Engine) refreshMain(ctx context.Context, force bool) (MainCredentials, error) {
	var out MainCredentials
	err := e.singleFlight(ctx, "main", func() error {
		c, err := e.refreshMainLocked(ctx, force)
		out = c
		return err
	})
	if err != nil {
		return MainCredentials{}, err
	}
	if out.Access == "" {
		out, _ = e.mainCredentials()
	}
	return out, nil
}

func (e *Engine) refreshMainLocked(ctx context.Context, force bool) (MainCredentials, error) {
	c, ok := e.mainCredentials()
	if !ok {
		return c, ErrNoMain
	}
	if c.Refresh == "" {
		return c, errorf(ErrConfigInvalid, "Token refresh failed: missing refresh token")
	}
	snap, err := e.store.Load(ctx)
	if err != nil {
		return c, err
	}
	now := e.now()
	if !force && !needsRefresh(c.Access, c.Expires, snap.Settings.RefreshBeforeExpiry, now) {
		return c, nil
	}
	identity := mainIdentity(snap)
	if until, ok := refreshLatched(snap.Main.LastRefreshError, identity, c.Refresh, now); ok {
		return c, &BackoffError{Account: MainAccountID, Kind: ErrRefreshBackoff, Record: snap.Main.LastRefreshError, Until: until, Now: now}
	}
	release, err := e.store.acquire(ctx, mainRefreshLock, mainRefreshLockTTL, mainRefreshLockWait)
	if err != nil {
		if errors.Is(err, ErrLockTimeout) {
			return c, errorf(ErrInProgress, "Claude OAuth refresh is already in progress%s", lockHolder(err))
		}
		return c, err
	}
	// Detached from ctx from here on, as a fallback rotation (see
	// rotateFallback): the new pair must reach the host even when the
	// caller gives up.
	out, err := runDetached(e, ctx, "refresh main", func(ctx context.Context) (MainCredentials, error) {
		defer release()
		return e.rotateMain(ctx, c, identity)
	})
	if err != nil && isCanceled(err) {
		return c, err
	}
	return out, err
}

// rotateMain calls the token endpoint with the main refresh token, hands
// the new pair to the host (EventMainRefreshed) and clears the persisted
// main refresh error.
func (e *Engine) rotateMain(ctx context.Context, c MainCredentials, identity string) (MainCredentials, error) {
	used := c.Refresh
	postCtx, cancelPost := context.WithTimeout(ctx, rotationTimeout)
	grant, failure, err := e.postToken(postCtx, map[string]string{
		"grant_type":    "refresh_token",
		"refresh_token": used.Reveal(),
		"client_id":     oauthClientID,
		"scope":         refreshScope,
	}, used, c.Access)
	cancelPost()
	if err != nil {
		return c, err
	}
	if failure != nil {
		return c, e.recordMainRefreshFailure(ctx, identity, used, *failure)
	}
	now := e.now()
	var s AccountState
	applyGrant(&s, grant, used, now)
	next := MainCredentials{Access: s.Access, Refresh: s.Refresh, Expires: s.Expires}
	e.setMainCredentials(next)
	// The host stores the main pair: hand it over before anything that
	// could fail.
	e.emit(Event{Kind: EventMainRefreshed, Accounts: []string{MainAccountID}, Main: &next})
	saveCtx, cancelSave := context.WithTimeout(ctx, saveTimeout)
	defer cancelSave()
	if _, err := e.store.UpdateState(saveCtx, func(st *StateFile) error {
		m := ensureMain(st)
		if m.LastRefreshError != nil {
			m.LastRefreshError = nil
			m.RefreshErrorClearedAt = epochMs(now)
		}
		return nil
	}); err != nil {
		e.log.Warn("main token refreshed but its error record could not be cleared", "err", err)
		return next, nil
	}
	e.log.Info("refreshed main token")
	return next, nil
}

func ensureMain(st *StateFile) *MainState {
	if st.Main == nil {
		st.Main = &MainState{}
	}
	return st.Main
}

// recordMainRefreshFailure classifies a failed main token call and persists
// what the effects table says, except a network failure: on the main path
// only answers of the token endpoint are latched (BEHAVIOUR.md §2.6), so
// after a network failure the next request tries the endpoint again, with
// its in-call retries.
func (e *Engine) recordMainRefreshFailure(ctx context.Context, identity string, used Secret, f Failure) error {
	v := e.Classify(ctx, f)
	eff := EffectOf(SourceToken, v)
	now := e.now()
	var until time.Time
	if eff.PersistRefreshError && !f.Network {
		if _, err := e.store.UpdateState(ctx, func(st *StateFile) error {
			m := ensureMain(st)
			m.LastRefreshError = refreshRecord(m.LastRefreshError, identity, used, f, v, now)
			until = fromMs(m.LastRefreshError.NextRetryAt)
			return nil
		}); err != nil {
			return fmt.Errorf("persist main refresh failure: %w", err)
		}
	}
	e.log.Warn("main token refresh failed", "status", f.Status, "class", v.Class, "decidedBy", v.DecidedBy)
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{MainAccountID}})
	return upstreamError(MainAccountID, f, v, until)
}
