package core

import (
	"context"
	"errors"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// Pass outcomes.
const (
	OutcomeRefreshed = "refreshed"
	OutcomeFetched   = "fetched"
	OutcomeSkipped   = "skipped"
	OutcomeBackoff   = "backoff"
	OutcomeFailed    = "failed"
)

// RefreshDue runs one background refresh pass: every enabled OAuth account
// (main included, when the host handed over its tokens) whose token is
// within the refresh window is refreshed, unless its refresh is backed off.
// The files are written before it returns.
func (e *Engine) RefreshDue(ctx context.Context) (PassSummary, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return PassSummary{}, err
	}
	var sum PassSummary
	if !snap.Settings.RefreshEnabled {
		sum.Results = append(sum.Results, PassResult{Account: "*", Outcome: OutcomeSkipped, Reason: "refresh.enabled is false"})
		return sum, nil
	}
	now := e.now()
	for _, a := range e.passAccounts(snap) {
		if a.skip != "" {
			sum.add(a.id, OutcomeSkipped, a.skip, nil)
			continue
		}
		if !policy.NeedsRefresh(a.tokens.Access, a.tokens.Expires, snap.Settings.RefreshBeforeExpiry, now) {
			sum.add(a.id, OutcomeSkipped, "token fresh", nil)
			continue
		}
		_, err := e.refresh(ctx, a.id, false, false)
		sum.add(a.id, OutcomeRefreshed, "", err)
		if isCanceled(err) {
			return sum, err
		}
	}
	return sum, nil
}

// passAccount is one account a refresh pass visits, and why the pass
// leaves it alone ("" to visit it).
type passAccount struct {
	oauthAccount
	skip string
}

// passAccounts lists the accounts of a refresh pass: main first, when the
// host handed over its tokens, then the fallbacks in config order.
func (e *Engine) passAccounts(snap *Snapshot) []passAccount {
	out := make([]passAccount, 0, len(snap.Accounts)+1)
	if c, ok := e.mainCredentials(); ok {
		m := passAccount{oauthAccount: mainAccount(snap, c, e)}
		if policy.NeedsRelogin(m.refreshErr, m.identity, policy.FingerprintFor(m.refreshErr, m.tokens.Refresh)) {
			m.skip = policy.ReasonNeedsRelogin.String()
		}
		out = append(out, m)
	}
	for i := range snap.Accounts {
		a := &snap.Accounts[i]
		p := passAccount{oauthAccount: fallbackAccount(a, e)}
		if skip, why := passSkip(a); skip {
			p.skip = why
		}
		out = append(out, p)
	}
	return out
}

// RefreshQuotaDue runs one background quota pass over every account whose
// snapshot is stale. It refreshes a due token first, as upstream does, so a
// token-endpoint failure can happen (and is recorded) inside it. Main and
// the fallbacks go through one path (passAccounts): main is visited only
// when quota.enabled is true, and is never claimed across machines.
func (e *Engine) RefreshQuotaDue(ctx context.Context) (PassSummary, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return PassSummary{}, err
	}
	var sum PassSummary
	if !snap.Settings.QuotaEnabled {
		sum.Results = append(sum.Results, PassResult{Account: "*", Outcome: OutcomeSkipped, Reason: "quota.enabled is false"})
		return sum, nil
	}
	now := e.now()
	var superseded []string // expired quota errors older than a fresh snapshot
	defer func() {
		if len(superseded) > 0 {
			e.clearQuotaErrors(ctx, superseded)
		}
	}()
	for _, a := range e.passAccounts(snap) {
		skip := a.skip
		if skip == "" && a.id == MainAccountID && !snap.Settings.QuotaRouting {
			// Upstream polls main's usage in the background only when
			// quota.enabled is explicitly true (BEHAVIOUR.md §3.4).
			skip = "main quota routing is off (quota.enabled is not true)"
		}
		if skip != "" {
			sum.add(a.id, OutcomeSkipped, skip, nil)
			continue
		}
		if !policy.QuotaStale(a.quota, snap.Settings, "", now) {
			if rec := a.quotaErr; rec != nil && !policy.QuotaBackoffActive(rec, now) && rec.CheckedAt < a.quota.LatestCheck() {
				superseded = append(superseded, a.id)
			}
			if snap.Settings.RefreshEnabled && policy.NeedsRefresh(a.tokens.Access, a.tokens.Expires, snap.Settings.RefreshBeforeExpiry, now) {
				// Upstream's quota pass refreshes a due token even when the
				// quota is fresh (BEHAVIOUR.md §3.4).
				_, err := e.refresh(ctx, a.id, false, true)
				sum.add(a.id, OutcomeRefreshed, "quota fresh; token due", err)
				if isCanceled(err) {
					return sum, err
				}
				continue
			}
			sum.add(a.id, OutcomeSkipped, "quota fresh", nil)
			continue
		}
		// Main is this machine's own account; a fallback on a shared store
		// is polled by one machine per interval.
		if a.id != MainAccountID && !e.claimPoll(ctx, a.id, snap.Settings.QuotaCheckInterval, now) {
			sum.add(a.id, OutcomeSkipped, "another machine sharing the store polls it this interval", nil)
			continue
		}
		_, err := e.fetchQuota(ctx, a.id)
		sum.add(a.id, OutcomeFetched, "", err)
		if isCanceled(err) {
			return sum, err
		}
	}
	return sum, nil
}

// passSkip says whether a pass leaves an account alone, and why. An
// account that needs a re-login is left alone: its refresh token was
// rejected for good, so posting it again cannot help (BEHAVIOUR.md §2.5).
func passSkip(a *Account) (bool, string) {
	switch {
	case a.Type != record.AccountOAuth:
		return true, "API-key route"
	case !a.IsEnabled():
		return true, "disabled"
	case a.Problem != "":
		return true, a.Problem
	case policy.NeedsRelogin(a.State.LastRefreshError, a.ID, policy.FingerprintFor(a.State.LastRefreshError, a.State.Refresh)):
		return true, policy.ReasonNeedsRelogin.String()
	}
	return false, ""
}

// add appends one result: success gives outcome, a backoff refusal gives
// "backoff" with its end, any other error "failed" with its class.
func (s *PassSummary) add(account, outcome, reason string, err error) {
	r := PassResult{Account: account, Outcome: outcome, Reason: reason}
	var be *BackoffError
	var ue *UpstreamError
	switch {
	case err == nil:
	case errors.As(err, &be):
		r.Outcome, r.Reason, r.Until = OutcomeBackoff, be.Error(), epochMs(be.Until)
		if be.Record != nil {
			r.Class = be.Record.Class
		}
	case errors.As(err, &ue):
		r.Outcome, r.Reason, r.Class = OutcomeFailed, ue.Error(), ue.Verdict.Class
		if !ue.Until.IsZero() {
			r.Until = epochMs(ue.Until)
		}
	default:
		r.Outcome, r.Reason = OutcomeFailed, secret.Redact(err.Error())
	}
	s.Results = append(s.Results, r)
}

// clearQuotaErrors removes quota errors that a fresher snapshot superseded,
// re-checking each under the state lock.
func (e *Engine) clearQuotaErrors(ctx context.Context, ids []string) {
	now := e.now()
	_, err := e.store.UpdateState(ctx, func(st *record.StateFile) error {
		for _, id := range ids {
			if id == MainAccountID && st.Main == nil {
				continue
			}
			r := recordsIn(st, id, false)
			if r != nil && *r.quotaErr != nil && (*r.quotaErr).CheckedAt < (*r.quota).LatestCheck() {
				r.quotaErrCleared(now)
			}
		}
		return nil
	})
	if err != nil {
		e.log.Warn("clear superseded quota errors", "err", err)
	}
}
