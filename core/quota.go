package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// usageGap is the least time between the starts of two usage calls made by
// this process (upstream's serial API gate).
const usageGap = time.Second

// quotaGate runs usage calls one at a time, at least usageGap apart. The
// wait goes through the engine's clock, so a manual clock advances instead.
type quotaGate struct {
	mu   sync.Mutex
	last time.Time
}

func (e *Engine) gatedUsage(ctx context.Context, access secret.Secret) (*anthropic.Reply, error) {
	e.quotaGate.mu.Lock()
	defer e.quotaGate.mu.Unlock()
	if !e.quotaGate.last.IsZero() {
		if wait := e.quotaGate.last.Add(usageGap).Sub(e.now()); wait > 0 {
			if err := e.clock.Sleep(ctx, wait); err != nil {
				return nil, err
			}
		}
	}
	e.quotaGate.last = e.now()
	return e.api.Usage(ctx, access)
}

// Quota-poll locks (BEHAVIOUR.md §1.7): across processes one polls an
// account's usage at a time. A poll that finds the lock taken does not
// wait: it answers with the cached snapshot while that is fresh.
const (
	quotaPollLockTTL = 30 * time.Second
	mainQuotaLock    = "opencode-main-quota-refresh"
)

// lockNameUnsafe is what upstream replaces by "-" when an account id
// becomes part of a lock name.
var lockNameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

func fallbackQuotaLock(id string) string {
	return "opencode-fallback-quota-refresh-" + lockNameUnsafe.ReplaceAllString(id, "-")
}

// fetchQuota is pollQuota for callers that only need the snapshot: one
// another process has just polled is as good as one fetched here.
func (e *Engine) fetchQuota(ctx context.Context, id string) (*record.QuotaSnapshot, error) {
	q, _, err := e.pollQuota(ctx, id)
	return q, err
}

// pollQuota fetches the quota of id (MainAccountID or a fallback) now,
// honouring its quota backoff, and persists the outcome as the effects
// table says. Inside the process concurrent polls of one account share
// one usage call; across processes the account's quota-poll lock does.
// fetched is false when the answer is the cached snapshot because another
// process holds the lock (and the snapshot is fresh).
func (e *Engine) pollQuota(ctx context.Context, id string) (q *record.QuotaSnapshot, fetched bool, err error) {
	if mustWait(ctx) {
		return nil, false, ErrWouldWait
	}
	ran := false
	err = e.singleFlight(ctx, "quota:"+id, func() error {
		var ferr error
		q, fetched, ferr = e.pollQuotaLocked(ctx, id)
		ran = true
		return ferr
	})
	if err != nil {
		return nil, false, err
	}
	if !ran {
		// We joined another caller's poll: read what it stored.
		_, a, err := e.oauthAccount(ctx, id)
		return a.quota, true, err
	}
	return q, fetched, nil
}

func (e *Engine) pollQuotaLocked(ctx context.Context, id string) (*record.QuotaSnapshot, bool, error) {
	snap, a, err := e.oauthAccount(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if a, err = a.src.bindQuota(ctx, snap, a); err != nil {
		return nil, false, err
	}
	if err := quotaBackedOff(a, e.now()); err != nil {
		return nil, false, err
	}
	release, err := e.store.files.Acquire(ctx, a.src.quotaLock(a.id), quotaPollLockTTL, 0)
	if err != nil {
		if errors.Is(err, ErrLockTimeout) {
			if !policy.QuotaStale(a.quota, snap.Settings, "", e.now()) {
				return a.quota, false, nil
			}
			return nil, false, errorf(ErrInProgress, "Quota refresh is already in progress for %s%s", a.id, lockHolder(err))
		}
		return nil, false, err
	}
	defer release()
	// Re-read under the lock: the process that held it may have armed a
	// backoff or rotated the token.
	if snap, a, err = e.oauthAccount(ctx, id); err != nil {
		return nil, false, err
	}
	now := e.now()
	if err := quotaBackedOff(a, now); err != nil {
		return nil, false, err
	}
	// The poll refreshes a due token first, so a token-endpoint failure can
	// happen here; it is recorded as a token failure inside a quota pass.
	if a.src.dueForUse(a.tokens, snap.Settings.RefreshBeforeExpiry, now) {
		if a, err = e.refresh(ctx, id, false, true); err != nil {
			return nil, false, err
		}
	}
	for attempt := 0; ; attempt++ {
		access := a.tokens.Access
		reply, err := e.gatedUsage(ctx, access)
		if err != nil && ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if err == nil && reply.OK() {
			q, err := e.storeQuota(ctx, a, access, reply.Body)
			return q, err == nil, err
		}
		f := e.api.Failure(verdict.SourceUsage, reply, err, access, a.tokens.Refresh)
		v := e.Classify(ctx, f)
		eff := verdict.EffectOf(verdict.SourceUsage, v)
		if eff.RefreshAndRetry && attempt == 0 {
			// One forced refresh, one retry; the quota error is recorded
			// only if the retry fails too.
			if a, err = e.refresh(ctx, id, true, true); err != nil {
				return nil, false, err
			}
			continue
		}
		return nil, false, e.recordQuotaFailure(ctx, a, f, v, eff)
	}
}

// quotaBackedOff is the refusal of a poll while the account's quota
// backoff is active, nil otherwise.
func quotaBackedOff(a oauthAccount, now time.Time) error {
	if rec := a.quotaErr; rec != nil && fromMs(rec.NextRetryAt).After(now) {
		return &BackoffError{Account: a.id, Kind: ErrQuotaBackoff, Record: rec, Until: fromMs(rec.NextRetryAt), Now: now}
	}
	return nil
}

// storeQuota merges a usage answer polled with access into the account's
// snapshot and clears its quota error.
func (e *Engine) storeQuota(ctx context.Context, a oauthAccount, access secret.Secret, body []byte) (*record.QuotaSnapshot, error) {
	now := e.now()
	q, err := anthropic.ParseUsage(body, now)
	if err != nil {
		return nil, errorf(ErrConfigInvalid, "%s", err)
	}
	var merged *record.QuotaSnapshot
	if _, err := e.store.UpdateState(ctx, func(st *record.StateFile) error {
		r := recordsIn(st, a.id, true)
		*r.quota = mergeQuota(*r.quota, q)
		(*r.quota).AccountIdentity = a.quotaIdentity
		r.quotaStored(access, now)
		merged = *r.quota
		return nil
	}); err != nil {
		return nil, fmt.Errorf("persist quota of %s: %w", a.id, err)
	}
	e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{a.id}})
	return merged, nil
}

// recordQuotaFailure persists a usage-endpoint failure as the effects table
// says (a 403 persists nothing at all) and returns the error.
func (e *Engine) recordQuotaFailure(ctx context.Context, a oauthAccount, f verdict.Failure, v verdict.Verdict, eff verdict.Effect) error {
	id := a.id
	now := e.now()
	var until time.Time
	if eff.PersistQuotaError && eff.QuotaBackoff != verdict.QuotaBackoffNone {
		// A transient backoff record is an observation (BEHAVIOUR.md §1.9).
		snap, err := e.store.observeState(ctx, id, func(st *record.StateFile) error {
			if r := recordsIn(st, id, false); r != nil {
				r.quotaFailed(quotaRecord(*r.quotaErr, quotaErrIdentity(a), eff.QuotaBackoff, f, v, now))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("persist quota failure of %s: %w", id, err)
		}
		if rec := snap.Main.LastQuotaAPIError; id == MainAccountID && rec != nil {
			until = fromMs(rec.NextRetryAt)
		} else if s := snap.State.Accounts[id]; id != MainAccountID && s != nil && s.LastQuotaRefreshError != nil {
			until = fromMs(s.LastQuotaRefreshError.NextRetryAt)
		}
		e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{id}})
	}
	e.log.Warn("quota check failed", "account", id, "status", f.Status, "class", v.Class, "decidedBy", v.DecidedBy)
	return upstreamError(id, f, v, until)
}

// observeHeaders harvests rate-limit headers of a response served by id
// into its quota snapshot. Header data never overwrites poll-only fields.
// A rate-limited response (limited) records the windows its headers say
// are spent; a served one (served) clears that record. touch records
// lastUsed (a fallback served) in the same observation, so a report costs
// one in-memory change, not two.
func (e *Engine) observeHeaders(ctx context.Context, id string, h http.Header, limited, served, touch bool) (*record.QuotaSnapshot, error) {
	now := e.now()
	q := anthropic.QuotaFromHeaders(h, now)
	var spent *record.SpentWindows
	if limited {
		spent = anthropic.SpentFromHeaders(h, now)
	}
	touch = touch && id != MainAccountID
	if q == nil && spent == nil && !touch {
		return nil, nil
	}
	used := epochMs(now)
	// An observation: in memory now, on disk within the write-behind
	// interval (BEHAVIOUR.md §1.9). fn runs again at the write.
	snap, err := e.store.observeState(ctx, id, func(st *record.StateFile) error {
		r := recordsIn(st, id, false)
		if r == nil {
			return errorf(ErrNoAccount, "%s", id)
		}
		*r.quota = mergeQuota(*r.quota, q)
		*r.rateLimited = nextSpent(*r.rateLimited, spent, served)
		if s := st.Accounts[id]; touch && s != nil && s.LastUsed < used {
			s.LastUsed = used
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if q != nil || spent != nil {
		e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{id}})
	}
	if id == MainAccountID {
		return snap.Main.Quota, nil
	}
	if s := snap.State.Accounts[id]; s != nil {
		return s.Quota, nil
	}
	return nil, nil
}

// nextSpent is the spent-window record after a response: a 429 that names
// spent windows replaces it, a served answer clears it (the account just
// served, so its windows are not spent), anything else keeps it.
func nextSpent(old, spent *record.SpentWindows, served bool) *record.SpentWindows {
	switch {
	case spent != nil:
		return spent
	case served:
		return nil
	}
	return old
}

// touchLastUsed records that a fallback served a request (lastUsed = now).
// A failure to persist is logged, not returned: it must not fail a request.
func (e *Engine) touchLastUsed(ctx context.Context, id string) {
	if id == MainAccountID {
		return
	}
	now := epochMs(e.now())
	// An observation (BEHAVIOUR.md §1.9).
	if _, err := e.store.observeState(ctx, id, func(st *record.StateFile) error {
		if s := st.Accounts[id]; s != nil && s.LastUsed < now {
			s.LastUsed = now
		}
		return nil
	}); err != nil && !errors.Is(err, ErrWouldWait) { // TryReport hands the report on
		e.log.Warn("persist lastUsed", "account", id, "err", err)
	}
}
