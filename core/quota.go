package core

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
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

func (e *Engine) gatedUsage(ctx context.Context, access Secret) (*upstreamReply, error) {
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
	req, err := http.NewRequest(http.MethodGet, e.ep.Usage, nil)
	if err != nil {
		return nil, fmt.Errorf("usage request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+access.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-beta", usageBeta)
	req.Header.Set("User-Agent", usageUserAgent)
	return e.send(ctx, req)
}

// fetchQuota fetches the quota of id (MainAccountID or a fallback) now,
// honouring its quota backoff, and persists the outcome as the effects
// table says. The returned snapshot is fresh.
func (e *Engine) fetchQuota(ctx context.Context, id string) (*QuotaSnapshot, error) {
	if id == MainAccountID {
		return e.fetchMainQuota(ctx)
	}
	return e.fetchFallbackQuota(ctx, id)
}

func (e *Engine) fetchFallbackQuota(ctx context.Context, id string) (*QuotaSnapshot, error) {
	_, a, err := e.loadOAuth(ctx, id)
	if err != nil {
		return nil, err
	}
	now := e.now()
	if rec := a.State.LastQuotaRefreshError; rec != nil && fromMs(rec.NextRetryAt).After(now) {
		return nil, &BackoffError{Account: a.ID, Kind: ErrQuotaBackoff, Record: rec, Until: fromMs(rec.NextRetryAt), Now: now}
	}
	// The pass refreshes a due token first, so a token-endpoint failure can
	// happen here; it is recorded as a token failure inside a quota pass.
	if a, err = e.refreshFallbackIn(ctx, id, false, true); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		access := a.State.Access
		reply, err := e.gatedUsage(ctx, access)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && reply.status >= 200 && reply.status < 300 {
			return e.storeFallbackQuota(ctx, a.ID, reply.body)
		}
		f := e.failureOf(SourceUsage, reply, err, access, a.State.Refresh)
		v := e.Classify(ctx, f)
		eff := EffectOf(SourceUsage, v)
		if eff.RefreshAndRetry && attempt == 0 {
			// One forced refresh, one retry; the quota error is recorded
			// only if the retry fails too.
			if a, err = e.refreshFallbackIn(ctx, id, true, true); err != nil {
				return nil, err
			}
			continue
		}
		return nil, e.recordQuotaFailure(ctx, a.ID, f, v, eff)
	}
}

func (e *Engine) storeFallbackQuota(ctx context.Context, id string, body []byte) (*QuotaSnapshot, error) {
	q, err := ParseUsage(body, e.now())
	if err != nil {
		return nil, err
	}
	var merged *QuotaSnapshot
	if _, err := e.store.UpdateState(ctx, func(st *StateFile) error {
		s := st.Accounts[id]
		if s == nil {
			s = &AccountState{}
			st.Accounts[id] = s
		}
		s.Quota = MergeQuota(s.Quota, q)
		s.Quota.AccountIdentity = id
		s.LastQuotaRefreshError = nil
		merged = s.Quota
		return nil
	}); err != nil {
		return nil, fmt.Errorf("persist quota of %s: %w", id, err)
	}
	e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{id}})
	return merged, nil
}

// recordQuotaFailure persists a usage-endpoint failure as the effects table
// says (a 403 persists nothing at all) and returns the error.
func (e *Engine) recordQuotaFailure(ctx context.Context, id string, f Failure, v Verdict, eff Effect) error {
	now := e.now()
	var until time.Time
	if eff.PersistQuotaError && eff.QuotaBackoff != QuotaBackoffNone {
		// A transient backoff record is an observation (BEHAVIOUR.md §1.8).
		snap, err := e.store.observeState(ctx, id, func(st *StateFile) error {
			if id == MainAccountID {
				m := ensureMain(st)
				m.LastQuotaAPIError = quotaRecord(m.LastQuotaAPIError, MainAccountID, eff.QuotaBackoff, f, v, now)
				m.QuotaErrorGeneration++
				return nil
			}
			if s := st.Accounts[id]; s != nil {
				s.LastQuotaRefreshError = quotaRecord(s.LastQuotaRefreshError, "", eff.QuotaBackoff, f, v, now)
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

func (e *Engine) fetchMainQuota(ctx context.Context) (*QuotaSnapshot, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	if rec := snap.Main.LastQuotaAPIError; rec != nil && fromMs(rec.NextRetryAt).After(now) {
		return nil, &BackoffError{Account: MainAccountID, Kind: ErrQuotaBackoff, Record: rec, Until: fromMs(rec.NextRetryAt), Now: now}
	}
	c, err := e.ensureMainFresh(ctx, "")
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reply, err := e.gatedUsage(ctx, c.Access)
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && reply.status >= 200 && reply.status < 300 {
			return e.storeMainQuota(ctx, c.Access, reply.body)
		}
		f := e.failureOf(SourceUsage, reply, err, c.Access, c.Refresh)
		v := e.Classify(ctx, f)
		eff := EffectOf(SourceUsage, v)
		if eff.RefreshAndRetry && attempt == 0 {
			if c, err = e.refreshMain(ctx, true); err != nil {
				return nil, err
			}
			continue
		}
		return nil, e.recordQuotaFailure(ctx, MainAccountID, f, v, eff)
	}
}

func (e *Engine) storeMainQuota(ctx context.Context, access Secret, body []byte) (*QuotaSnapshot, error) {
	now := e.now()
	q, err := ParseUsage(body, now)
	if err != nil {
		return nil, err
	}
	var merged *QuotaSnapshot
	if _, err := e.store.UpdateState(ctx, func(st *StateFile) error {
		m := ensureMain(st)
		m.Quota = MergeQuota(m.Quota, q)
		m.Quota.AccountIdentity = MainAccountID
		m.QuotaCheckedAt = epochMs(now)
		m.QuotaToken = access.Fingerprint()
		if m.LastQuotaAPIError != nil {
			m.LastQuotaAPIError = nil
			m.QuotaErrorClearedAt = epochMs(now)
			m.QuotaErrorGeneration++
		}
		merged = m.Quota
		return nil
	}); err != nil {
		return nil, fmt.Errorf("persist main quota: %w", err)
	}
	e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{MainAccountID}})
	return merged, nil
}

// observeHeaders harvests rate-limit headers of a response served by id
// into its quota snapshot. Header data never overwrites poll-only fields.
// A rate-limited response (limited) records the windows its headers say
// are spent; a served one (served) clears that record. touch records
// lastUsed (a fallback served) in the same observation, so a report costs
// one in-memory change, not two.
func (e *Engine) observeHeaders(ctx context.Context, id string, h http.Header, limited, served, touch bool) (*QuotaSnapshot, error) {
	now := e.now()
	q := QuotaFromHeaders(h, now)
	var spent *SpentWindows
	if limited {
		spent = spentFromHeaders(h, now)
	}
	touch = touch && id != MainAccountID
	if q == nil && spent == nil && !touch {
		return nil, nil
	}
	used := epochMs(now)
	// An observation: in memory now, on disk within the write-behind
	// interval (BEHAVIOUR.md §1.8). fn runs again at the write.
	snap, err := e.store.observeState(ctx, id, func(st *StateFile) error {
		if id == MainAccountID {
			m := ensureMain(st)
			m.Quota = MergeQuota(m.Quota, q)
			m.RateLimited = nextSpent(m.RateLimited, spent, served)
			return nil
		}
		s := st.Accounts[id]
		if s == nil {
			return errorf(ErrNoAccount, "%s", id)
		}
		s.Quota = MergeQuota(s.Quota, q)
		s.RateLimited = nextSpent(s.RateLimited, spent, served)
		if touch && s.LastUsed < used {
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
func nextSpent(old, spent *SpentWindows, served bool) *SpentWindows {
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
	// An observation (BEHAVIOUR.md §1.8).
	if _, err := e.store.observeState(ctx, id, func(st *StateFile) error {
		if s := st.Accounts[id]; s != nil && s.LastUsed < now {
			s.LastUsed = now
		}
		return nil
	}); err != nil {
		e.log.Warn("persist lastUsed", "account", id, "err", err)
	}
}
