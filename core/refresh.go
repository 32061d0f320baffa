package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Lock names and times of the refresh protocol (BEHAVIOUR.md §1.7, §2.4).
// Our TTLs are shorter than upstream's (10 min and 2 min): the locks are
// renewed every TTL/3 while held, so a live holder keeps them, and a holder
// that died where we cannot prove it (another host on a shared disk)
// blocks the account for at most the TTL. The waits are upstream's.
const (
	fallbackRefreshLockTTL  = 20 * time.Second
	fallbackRefreshLockWait = 10 * time.Second
	mainRefreshLock         = "opencode-main-oauth-refresh"
	mainRefreshLockTTL      = 20 * time.Second
	mainRefreshLockWait     = 5 * time.Second
	// adoptGrowth is how much a concurrent refresh must have extended the
	// expiry for us to adopt its result instead of refreshing again.
	adoptGrowth = 60 * time.Second
)

func fallbackRefreshLock(id string) string {
	return "fallback-oauth-refresh-" + sha256Hex(id)[:16]
}

// refreshRecord builds the lastRefreshError record for a token-endpoint
// failure (upstream buildRefreshOperationError), using the effects table
// and the one refresh backoff schedule.
func refreshRecord(prev *record.OpError, identity string, refresh secret.Secret, f verdict.Failure, v verdict.Verdict, now time.Time) *record.OpError {
	eff := verdict.EffectOf(verdict.SourceToken, v)
	fp := refresh.Fingerprint()
	count := 1
	if prev != nil && prev.AccountIdentity == identity && prev.RefreshTokenFingerprint == fp {
		count = prev.RetryCount + 1
	}
	delay := verdict.RefreshBackoffDelay(eff.RefreshBackoff, v.RetryAfter, f.Network, count)
	permanent := eff.RefreshBackoff == verdict.RefreshBackoffPermanent
	return &record.OpError{
		Message:                 (&UpstreamError{Failure: f}).Error(),
		CheckedAt:               epochMs(now),
		NextRetryAt:             epochMs(now.Add(delay)),
		RetryCount:              count,
		AccountIdentity:         identity,
		RefreshTokenFingerprint: fp,
		Status:                  f.Status,
		Permanent:               &permanent,
		Class:                   v.Class,
		DecidedBy:               v.DecidedBy,
	}
}

// quotaRecord builds the lastQuotaRefreshError record (upstream
// buildQuotaOperationError) for a quota backoff of the given kind.
func quotaRecord(prev *record.OpError, identity string, kind verdict.QuotaBackoffKind, f verdict.Failure, v verdict.Verdict, now time.Time) *record.OpError {
	count := 1
	if prev != nil && prev.AccountIdentity == identity {
		count = prev.RetryCount + 1
	}
	return &record.OpError{
		Message:         (&UpstreamError{Failure: f}).Error(),
		CheckedAt:       epochMs(now),
		NextRetryAt:     epochMs(now.Add(verdict.QuotaBackoffDelay(kind, count))),
		RetryCount:      count,
		AccountIdentity: identity,
		Status:          f.Status,
		Class:           v.Class,
		DecidedBy:       v.DecidedBy,
	}
}

// refreshLatched returns the end of the active refresh backoff of a
// record, if any (see policy.RefreshBackoffActive for the binding rules).
func refreshLatched(rec *record.OpError, identity string, refresh secret.Secret, now time.Time) (time.Time, bool) {
	return policy.RefreshBackoffUntil(rec, identity, now, refresh.Fingerprint())
}

// flight is one in-process refresh that concurrent callers share.
type flight struct {
	done chan struct{}
	err  error
	// joined counts the callers waiting for this flight (for tests).
	joined int
}

// singleFlight runs fn once per key at a time; concurrent callers with the
// same key wait for the running call and get its error. A caller whose own
// context is fine does not inherit the cancellation of the caller that ran
// fn: it runs (or joins) the next flight instead.
func (e *Engine) singleFlight(ctx context.Context, key string, fn func() error) error {
	e.flightMu.Lock()
	if f, ok := e.flights[key]; ok {
		f.joined++
		e.flightMu.Unlock()
		select {
		case <-f.done:
			if isCanceled(f.err) && ctx.Err() == nil {
				return e.singleFlight(ctx, key, fn)
			}
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	e.flights[key] = f
	e.flightMu.Unlock()
	defer func() {
		e.flightMu.Lock()
		delete(e.flights, key)
		e.flightMu.Unlock()
		close(f.done)
	}()
	f.err = fn()
	return f.err
}

// refreshFallback refreshes a fallback account's token when it needs it (or
// always, with force) and returns the account (see [Engine.refresh]).
func (e *Engine) refreshFallback(ctx context.Context, id string, force bool) (*Account, error) {
	return e.refreshFallbackIn(ctx, id, force, false)
}

// refreshFallbackIn is refreshFallback; inQuotaPass also records a failure
// as the account's quota error, as upstream's quota recorder does.
func (e *Engine) refreshFallbackIn(ctx context.Context, id string, force, inQuotaPass bool) (*Account, error) {
	if id == MainAccountID {
		return nil, errorf(ErrNoAccount, "%s", id)
	}
	a, err := e.refresh(ctx, id, force, inQuotaPass)
	if err != nil {
		return nil, err
	}
	return a.fallback, nil
}

func (e *Engine) loadOAuth(ctx context.Context, id string) (*Snapshot, *Account, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	a, ok := snap.Account(id)
	if !ok {
		return nil, nil, errorf(ErrNoAccount, "%s", id)
	}
	if a.Type != record.AccountOAuth {
		return nil, nil, errorf(ErrConfigInvalid, "account %s is an API-key route and has no token to refresh", a.ID)
	}
	if a.Problem != "" {
		return nil, nil, errorf(ErrConfigInvalid, "account %s: %s", a.ID, a.Problem)
	}
	return snap, a, nil
}

// stateFileSource is the credential source of a fallback account: its
// tokens live in the state file, and a rotation is journaled and saved
// there before anything else (BEHAVIOUR.md §2.4).
type stateFileSource struct{ e *Engine }

func (stateFileSource) refreshLock(id string) (string, time.Duration, time.Duration) {
	return fallbackRefreshLock(id), fallbackRefreshLockTTL, fallbackRefreshLockWait
}

func (stateFileSource) bindQuota(_ context.Context, _ *Snapshot, a oauthAccount) (oauthAccount, error) {
	return a, nil
}

func (stateFileSource) quotaLock(id string) string { return fallbackQuotaLock(id) }

// lockBusy adopts the result of the process that held the lock for the
// whole wait, if it produced one.
func (s stateFileSource) lockBusy(ctx context.Context, before oauthAccount, force bool, err error) (oauthAccount, error) {
	if snap, b, lerr := s.e.oauthAccount(ctx, before.id); lerr == nil && adoptable(before.tokens, b.tokens, s.e.now(), snap.Settings.RefreshBeforeExpiry, force) {
		return b, nil
	}
	return oauthAccount{}, errorf(ErrInProgress, "Fallback OAuth refresh is already in progress for %s%s", before.id, lockHolder(err))
}

func (s stateFileSource) rotate(ctx context.Context, before oauthAccount, force, inQuotaPass bool) (oauthAccount, error) {
	a, err := s.e.rotateFallback(ctx, before.id, before.tokens, force, inQuotaPass)
	if err != nil {
		return oauthAccount{}, err
	}
	return fallbackAccount(a, s.e), nil
}

func (stateFileSource) dueForUse(t tokenPair, window time.Duration, now time.Time) bool {
	return policy.NeedsRefresh(t.Access, t.Expires, window, now)
}

func (stateFileSource) latchesNetwork() bool { return true }

// lockHolder is " (held by pid 12 on host h until <time>)" for a lock
// timeout whose lock file names its holder, "" otherwise.
func lockHolder(err error) string {
	var te *filestore.LockTimeoutError
	if errors.As(err, &te) && te.Holder != "" {
		return " (lock" + te.Holder + ")"
	}
	// A backend's lock names its holder its own way.
	var named interface{ HolderName() string }
	if errors.As(err, &named) && named.HolderName() != "" {
		return " (lock held by " + named.HolderName() + ")"
	}
	return ""
}

// rotateFallback is the part of a fallback refresh that runs under the
// account's refresh lock, detached from the caller: re-read, reserve the
// room for the save, call the token endpoint, save the answer.
func (e *Engine) rotateFallback(ctx context.Context, id string, before tokenPair, force, inQuotaPass bool) (*Account, error) {
	// A process killed after its token call may have left the rotated
	// pair in its journal: adopt it rather than post the consumed token.
	if _, err := e.store.salvageTemps(ctx); err != nil {
		e.log.Warn("salvage temporary files of killed writers", "err", err)
	}
	// Double-checked under the lock: another process may have refreshed.
	snap, a, err := e.loadOAuth(ctx, id)
	if err != nil {
		return nil, err
	}
	now := e.now()
	if adoptable(before, fallbackAccount(a, e).tokens, now, snap.Settings.RefreshBeforeExpiry, force) {
		return a, nil
	}
	if until, ok := refreshLatched(a.State.LastRefreshError, a.ID, a.State.Refresh, now); ok {
		return nil, &BackoffError{Account: a.ID, Kind: ErrRefreshBackoff, Record: a.State.LastRefreshError, Until: until, Now: now}
	}
	// Room for the save first: a disk that cannot take the rotated pair
	// must stop us before the endpoint consumes the old token.
	res, err := e.store.reserveState()
	if err != nil {
		return nil, fmt.Errorf("refresh of %s not attempted: cannot prepare the save of its rotated tokens (%w); check the disk (space, permissions) and try again", a.ID, err)
	}
	defer res.Abort()
	used := a.State.Refresh
	postCtx, cancelPost := context.WithTimeout(ctx, rotationTimeout)
	grant, failure, err := e.api.Refresh(postCtx, used, a.State.Access)
	cancelPost()
	if err != nil {
		return nil, err
	}
	if failure != nil {
		res.Abort()
		if failure.Status == 400 {
			// The token may be consumed by a process killed before its
			// save: its journal, if any, holds the rotated pair.
			if b, ok := e.salvaged(ctx, id, used); ok {
				return b, nil
			}
		}
		return nil, e.recordRefreshFailure(ctx, fallbackAccount(a, e), used, *failure, inQuotaPass)
	}
	answered := time.Now()
	now = e.now()
	var pair record.AccountState
	applyGrant(&pair, grant, used, now)
	if err := res.WriteJournal(a.ID, pair, used); err != nil {
		e.log.Warn("rotated tokens not journaled; saving them directly", "account", a.ID, "err", err)
	}
	// From the answer to here a kill loses the account; afterwards the
	// journal carries the pair until the save.
	journaled := time.Since(answered)
	saveCtx, cancelSave := context.WithTimeout(ctx, saveTimeout)
	defer cancelSave()
	snap, err = e.store.saveRotation(saveCtx, res, func(st *record.StateFile) error {
		s := st.Accounts[a.ID]
		if s == nil {
			s = &record.AccountState{}
			st.Accounts[a.ID] = s
		}
		applyGrant(s, grant, used, now)
		s.LastRefreshError = nil
		return nil
	})
	if err != nil {
		return e.keepUnsaved(ctx, a.ID, used, pair, res.KeepJournal(), err)
	}
	e.log.Info("refreshed fallback token", "account", a.ID,
		"answerToJournalUs", journaled.Microseconds(), "answerToSaveUs", time.Since(answered).Microseconds())
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{a.ID}})
	out, _ := snap.Account(a.ID)
	return out, nil
}

// salvaged looks for the rotated pair of account id in the temporaries of
// killed writers after the endpoint refused used; it returns the account
// when it found and saved a newer pair.
func (e *Engine) salvaged(ctx context.Context, id string, used secret.Secret) (*Account, bool) {
	restored, err := e.store.salvageTemps(ctx)
	if err != nil || !slices.Contains(restored, id) {
		return nil, false
	}
	_, a, err := e.loadOAuth(ctx, id)
	if err != nil || a.State.Refresh == used {
		return nil, false
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{id}})
	return a, true
}

// adoptable reports whether the stored state shows a refresh by someone
// else since before was read: new tokens, or an expiry grown by more than a
// minute, that no longer need refreshing (unless forced).
func adoptable(before, now tokenPair, t time.Time, window time.Duration, force bool) bool {
	changed := now.Access != before.Access || now.Refresh != before.Refresh ||
		now.Expires-before.Expires > adoptGrowth.Milliseconds()
	if !changed {
		return false
	}
	return force || !policy.NeedsRefresh(now.Access, now.Expires, window, t)
}

func applyGrant(s *record.AccountState, g *anthropic.Grant, used secret.Secret, now time.Time) {
	s.Access = secret.Secret(g.AccessToken)
	if g.RefreshToken != "" {
		s.Refresh = secret.Secret(g.RefreshToken)
	} else {
		s.Refresh = used
	}
	s.Expires = epochMs(now.Add(time.Duration(g.ExpiresIn * float64(time.Second))))
	s.LastRefreshedAt = epochMs(now)
}

// recordRefreshFailure classifies a token-endpoint failure of account a,
// persists what the effects table says, and returns the error for the
// caller. A network failure is recorded only where the account's source
// latches it (BEHAVIOUR.md §2.5): on main the next request tries again.
func (e *Engine) recordRefreshFailure(ctx context.Context, a oauthAccount, used secret.Secret, f verdict.Failure, inQuotaPass bool) error {
	v := e.Classify(ctx, f)
	eff := verdict.EffectOf(verdict.SourceToken, v)
	now := e.now()
	var until time.Time
	persist := eff.PersistRefreshError && (!f.Network || a.src.latchesNetwork())
	quotaToo := inQuotaPass && eff.InQuotaPass != verdict.QuotaBackoffNone
	if persist || quotaToo {
		if _, err := e.store.UpdateState(ctx, func(st *record.StateFile) error {
			r := recordsIn(st, a.id, true)
			if r.refresh != nil && *r.refresh != used {
				// Someone rotated the token meanwhile; our failure is stale.
				return nil
			}
			if pr86Bug && inQuotaPass && f.Status == 403 {
				// Deliberately broken build (tag acctpool_pr86bug): upstream's
				// PR #86 guard swallows a token-endpoint 403 in a quota pass.
				return nil
			}
			if persist {
				*r.refreshErr = refreshRecord(*r.refreshErr, a.identity, used, f, v, now)
				until = fromMs((*r.refreshErr).NextRetryAt)
			}
			if quotaToo {
				*r.quotaErr = quotaRecord(*r.quotaErr, quotaErrIdentity(a), eff.InQuotaPass, f, v, now)
			}
			return nil
		}); err != nil {
			return fmt.Errorf("persist refresh failure of %s: %w", a.id, err)
		}
	}
	e.log.Warn("token refresh failed", "account", a.id, "status", f.Status, "network", f.Network, "class", v.Class, "decidedBy", v.DecidedBy)
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{a.id}})
	return upstreamError(a.id, f, v, until)
}
