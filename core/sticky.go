package core

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	json "github.com/goccy/go-json"
)

// Sticky-balanced constants (upstream-core.md 5.4).
const (
	stickyTTL        = 7 * 24 * time.Hour
	stickyMax        = 4096
	stickyTouchEvery = time.Hour
	stickyLockTTL    = 10 * time.Second
	stickyLockWait   = 5 * time.Second
	stickyLockPoll   = 10 * time.Millisecond
	stickyJitterMax  = 21 // seconds: jitter is 0..20 s
)

// Synthetic messages of sticky-balanced routing.
const (
	stickyHoldMessage    = "Sticky OAuth account five-hour quota resets shortly; retaining session affinity."
	stickyWaitingMessage = "Sticky-balanced routing is waiting for current OAuth quota snapshots"
)

// stickyAssignment is one session's account, keyed in the file by the
// sha256 hex of the session id (never the id itself).
type stickyAssignment struct {
	AccountID         string `json:"accountId"`
	Family            string `json:"family"`
	AffinityModelID   string `json:"affinityModelId,omitempty"`
	AssignedAt        int64  `json:"assignedAt"`
	LastSeenAt        int64  `json:"lastSeenAt"`
	InitialInputBytes int64  `json:"initialInputBytes"`
	QuotaCheckedAt    int64  `json:"quotaCheckedAt"`
	Extra             Extra  `json:"-"`
}

// UnmarshalJSON keeps unknown keys in Extra.
func (a *stickyAssignment) UnmarshalJSON(b []byte) error {
	type alias stickyAssignment
	var x alias
	extra, err := decodeWithExtra(b, &x)
	*a = stickyAssignment(x)
	a.Extra = extra
	return err
}

// MarshalJSON writes unknown keys back.
func (a stickyAssignment) MarshalJSON() ([]byte, error) {
	type alias stickyAssignment
	x := alias(a)
	return encodeWithExtra(&x, a.Extra)
}

// stickyFile is anthropic-auth-routing-state.json.
type stickyFile struct {
	Version     int                          `json:"version"`
	UpdatedAt   int64                        `json:"updatedAt"`
	Assignments map[string]*stickyAssignment `json:"assignments"`
	Extra       Extra                        `json:"-"`

	// index maps the raw session hash to its assignment, for lookups
	// without hex encoding.
	index map[[32]byte]*stickyAssignment
}

// UnmarshalJSON keeps unknown keys in Extra.
func (f *stickyFile) UnmarshalJSON(b []byte) error {
	type alias stickyFile
	var x alias
	extra, err := decodeWithExtra(b, &x)
	*f = stickyFile(x)
	f.Extra = extra
	return err
}

// MarshalJSON writes unknown keys back.
func (f stickyFile) MarshalJSON() ([]byte, error) {
	type alias stickyFile
	x := alias(f)
	x.index = nil
	if x.Assignments == nil {
		x.Assignments = map[string]*stickyAssignment{}
	}
	return encodeWithExtra(&x, f.Extra)
}

func (f *stickyFile) reindex() {
	f.index = make(map[[32]byte]*stickyAssignment, len(f.Assignments))
	for k, a := range f.Assignments {
		var key [32]byte
		if n, err := hex.Decode(key[:], []byte(k)); err == nil && n == 32 && a != nil {
			f.index[key] = a
		}
	}
}

func (f *stickyFile) lookup(key [32]byte) *stickyAssignment { return f.index[key] }

func (f *stickyFile) set(key [32]byte, a *stickyAssignment) {
	f.Assignments[hex.EncodeToString(key[:])] = a
	f.index[key] = a
}

func (f *stickyFile) remove(key [32]byte) {
	delete(f.Assignments, hex.EncodeToString(key[:]))
	delete(f.index, key)
}

// prune drops assignments idle for the TTL and, beyond the cap, the least
// recently seen ones. It reports whether anything was dropped.
func (f *stickyFile) prune(now time.Time) bool {
	changed := false
	cutoff := epochMs(now.Add(-stickyTTL))
	for k, a := range f.Assignments {
		if a == nil || a.AccountID == "" || a.LastSeenAt <= cutoff {
			delete(f.Assignments, k)
			changed = true
		}
	}
	if extra := len(f.Assignments) - stickyMax; extra > 0 {
		keys := make([]string, 0, len(f.Assignments))
		for k := range f.Assignments {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := f.Assignments[keys[i]], f.Assignments[keys[j]]
			if a.LastSeenAt != b.LastSeenAt {
				return a.LastSeenAt < b.LastSeenAt
			}
			return keys[i] < keys[j]
		})
		for _, k := range keys[:extra] {
			delete(f.Assignments, k)
		}
		changed = true
	}
	if changed {
		f.reindex()
	}
	return changed
}

func readStickyFile(path string) (*stickyFile, error) {
	f := &stickyFile{Version: 1}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%w: Invalid sticky routing state at %s", ErrCorruptFile, path)
	default:
		if err := json.Unmarshal(data, f); err != nil || f.Version != 1 {
			return nil, fmt.Errorf("%w: Invalid sticky routing state at %s", ErrCorruptFile, path)
		}
	}
	if f.Assignments == nil {
		f.Assignments = map[string]*stickyAssignment{}
	}
	f.reindex()
	return f, nil
}

// stickyCache is the in-memory copy of the routing state file, re-read
// only when the file on disk changes. The cached file is never modified:
// writers read a fresh copy under the lock and publish it after writing.
type stickyCache struct {
	mu      sync.Mutex
	fi      fileStamp // the cached version
	checked time.Time // wall time fi was last confirmed
	file    *stickyFile
}

// stickyCurrent returns the routing state, from memory while the file is
// unchanged on disk (one stat, no read).
func (e *Engine) stickyCurrent() (*stickyFile, error) {
	r := e.router()
	path := e.store.Paths().RoutingState
	c := &r.sticky
	wall := e.store.wallNow()
	c.mu.Lock()
	if c.file != nil && recentlyChecked(c.checked, wall) {
		f := c.file
		c.mu.Unlock()
		return f, nil
	}
	c.mu.Unlock()
	fi, err := stampOf(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.file != nil && c.fi.same(fi) {
		f := c.file
		c.checked = wall
		c.mu.Unlock()
		return f, nil
	}
	c.mu.Unlock()
	f, err := readStickyFile(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.file, c.fi, c.checked = f, fi, wall
	c.mu.Unlock()
	return f, nil
}

// updateSticky re-reads the routing state under its lock, lets fn change
// it, and writes it back when fn reports a change.
func (e *Engine) updateSticky(ctx context.Context, fn func(f *stickyFile, now time.Time) (bool, error)) error {
	r := e.router()
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	path := e.store.Paths().RoutingState
	release, err := e.store.acquireAt(ctx, path+".write.lock", stickyLockTTL, stickyLockWait, stickyLockPoll)
	if err != nil {
		return fmt.Errorf("lock routing state: %w", err)
	}
	defer release()
	f, err := readStickyFile(path)
	if err != nil {
		return err
	}
	now := e.now()
	changed := f.prune(now)
	fnChanged, err := fn(f, now)
	if err != nil {
		return err
	}
	if !changed && !fnChanged {
		return nil
	}
	f.prune(now)
	f.UpdatedAt = epochMs(now)
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode routing state: %w", err)
	}
	if err := atomicfile.Write(path, append(data, '\n')); err != nil {
		return fmt.Errorf("write routing state: %w", err)
	}
	fi, err := stampOf(path)
	if err != nil {
		return nil
	}
	r.sticky.mu.Lock()
	r.sticky.file, r.sticky.fi, r.sticky.checked = f, fi, e.store.wallNow()
	r.sticky.mu.Unlock()
	return nil
}

// stickyVerdict is what a fresh quota snapshot says about keeping a session
// on its account.
type stickyVerdict int

const (
	stickyRetain stickyVerdict = iota
	stickyHold
	stickyMigrate
)

// decideStickyQuota is upstream's decideStickyQuotaFailure: migrate on an
// exhausted model scope or seven-day window, hold when an exhausted
// five-hour window resets within 15 minutes (until the reset), migrate on
// a later five-hour reset, otherwise retain.
func decideStickyQuota(q *QuotaSnapshot, model string, now time.Time) (stickyVerdict, string, time.Time) {
	if !hasStandardWindows(q) {
		return stickyRetain, "quota unknown", time.Time{}
	}
	if sw := scopedWindowFor(q, model); sw != nil && finite(sw.RemainingPercent) && sw.RemainingPercent <= 0 {
		until, _ := futureReset(sw.ResetsAt, now)
		return stickyMigrate, sw.ModelName + " weekly limit reached", until
	}
	if q.SevenDay.RemainingPercent <= 0 {
		until, _ := futureReset(q.SevenDay.ResetsAt, now)
		return stickyMigrate, "seven-day quota exhausted", until
	}
	if q.FiveHour.RemainingPercent <= 0 {
		until, ok := futureReset(q.FiveHour.ResetsAt, now)
		if ok && until.Sub(now) <= stickyHoldWindow {
			return stickyHold, "five-hour quota resets shortly", until
		}
		return stickyMigrate, "five-hour quota exhausted", until
	}
	return stickyRetain, "", time.Time{}
}

// stickyRetryAfter adds the session's deterministic jitter (0..20 s, from
// the first four bytes of sha256(sessionId)) to a wait rounded up to whole
// seconds, so held sessions do not all come back at the same moment.
func stickyRetryAfter(sum [32]byte, d time.Duration) time.Duration {
	jitter := time.Duration(binary.BigEndian.Uint32(sum[:4])%stickyJitterMax) * time.Second
	return ceilSeconds(d) + jitter
}

// stickyRoute is one account a sticky session can live on.
type stickyRoute struct {
	id    string
	order int
	acct  *Account // nil for main
	quota *QuotaSnapshot
	qerr  *OpError
	// blocked is why the route can neither keep nor take sessions
	// (refresh backoff); blockedUntil is when that ends.
	blocked      string
	blockedUntil time.Time
	// needsToken is set when the token must be refreshed before use.
	needsToken bool
}

// stickyRoutes lists main (unless its refresh token needs a re-login) and
// every enabled OAuth fallback with an access token and a usable refresh
// token. API-key routes never take part.
func stickyRoutes(snap *Snapshot, creds MainCredentials, now time.Time) ([]stickyRoute, []AccountReason) {
	s := snap.Settings
	routes := make([]stickyRoute, 0, len(snap.Accounts)+1)
	var out []AccountReason
	id := mainIdentity(snap)
	fp := fingerprintFor(snap.Main.LastRefreshError, creds.Refresh)
	if refreshPermanent(snap.Main.LastRefreshError, id, fp) {
		out = append(out, AccountReason{AccountID: MainAccountID, Reason: ReasonNeedsRelogin})
	} else {
		r := stickyRoute{id: MainAccountID, quota: mainQuota(snap), qerr: snap.Main.LastQuotaAPIError}
		if until, ok := refreshBackoffUntil(snap.Main.LastRefreshError, id, now, fp); ok {
			r.blocked, r.blockedUntil = ReasonRefreshBackoff, until
		} else {
			r.needsToken = expired(creds.Access, creds.Expires, now)
		}
		routes = append(routes, r)
	}
	for i := range snap.Accounts {
		a := &snap.Accounts[i]
		if a.Type != AccountOAuth {
			out = append(out, AccountReason{AccountID: a.ID, Reason: "API-key routes are not part of sticky-balanced assignment"})
			continue
		}
		if a.Problem != "" || !a.IsEnabled() || a.State.Access == "" || refreshPermanent(a.State.LastRefreshError, a.ID, a.State.Refresh.Fingerprint()) {
			u := AccountUsability(snap, a, "", now)
			if u.OK {
				u.Reason = "no access token"
			}
			out = append(out, reasonOf(a.ID, u))
			continue
		}
		r := stickyRoute{id: a.ID, order: i + 1, acct: a, quota: a.State.Quota, qerr: a.State.LastQuotaRefreshError}
		if needsRefresh(a.State.Access, a.State.Expires, s.RefreshBeforeExpiry, now) {
			if until, ok := refreshBackoffUntil(a.State.LastRefreshError, a.ID, now, a.State.Refresh.Fingerprint()); ok {
				r.blocked, r.blockedUntil = ReasonRefreshBackoff, until
			} else {
				r.needsToken = true
			}
		}
		routes = append(routes, r)
	}
	return routes, out
}

// stickyKeep reports whether a route may keep its sessions: not blocked,
// its fresh quota does not say migrate, it passes minimumRemaining (a
// deliberate addition: a session never drains an account below the
// user's reserve) and the killswitch. Stale or unknown quota keeps.
func stickyKeep(s Settings, r *stickyRoute, model string, now time.Time) (bool, stickyVerdict, string, time.Time) {
	if r.blocked != "" {
		return false, stickyRetain, r.blocked, r.blockedUntil
	}
	fresh := quotaAgeFresh(r.quota, s.QuotaCheckInterval, model, now)
	v, why, until := stickyRetain, "", time.Time{}
	if fresh {
		v, why, until = decideStickyQuota(r.quota, model, now)
		if v == stickyMigrate {
			return false, v, why, until
		}
		if hasStandardWindows(r.quota) {
			if why, until, ok := policyFailure(r.quota, s, now); !ok {
				return false, stickyMigrate, why, until
			}
		}
	}
	if why, until, ok := killswitchFailure(r.quota, s, r.id, model, now); !ok {
		return false, stickyMigrate, why, until
	}
	return true, v, why, until
}

// stickyCandidate reports whether a route may take a new session: not
// blocked, passing the killswitch and minimumRemaining (so unknown quota
// qualifies only when failClosedOnUnknownQuota is off or quota checks are
// disabled), and with known quota, neither exhausted for the model nor
// otherwise unusable.
func stickyCandidate(snap *Snapshot, r *stickyRoute, model string, now time.Time) Usability {
	s := snap.Settings
	if r.blocked != "" {
		return Usability{Reason: r.blocked, Until: r.blockedUntil}
	}
	if why, until, ok := killswitchFailure(r.quota, s, r.id, model, now); !ok {
		return Usability{Reason: why, Until: until}
	}
	if why, until, ok := policyFailure(r.quota, s, now); !ok {
		return Usability{Reason: why, Until: until}
	}
	if hasStandardWindows(r.quota) {
		if v, why, until := decideStickyQuota(r.quota, model, now); v != stickyRetain {
			return Usability{Reason: why, Until: until}
		}
		if r.acct != nil {
			if u := AccountUsability(snap, r.acct, model, now); !u.OK {
				return u
			}
		}
	}
	return Usability{OK: true}
}

func sessionKey(sessionID string) [32]byte { return sha256.Sum256([]byte(sessionID)) }

// affinityOf is the session's affinity: the model id, or the family when
// the request names no model. A change forces a new assignment.
func affinityMatches(a *stickyAssignment, model string) bool {
	if model != "" {
		return a.AffinityModelID == model
	}
	return a.AffinityModelID == "" && a.Family == modelFamily("")
}

// selectSticky routes a request of a sticky session: the session's account
// while it holds, otherwise a new one from the weighted deficit allocator
// (upstream-core.md 5.4).
func (e *Engine) selectSticky(ctx context.Context, snap *Snapshot, req SelectRequest, o routeOpts) (*Route, error) {
	key := sessionKey(req.SessionID)
	if r, err, ok := e.stickyFast(ctx, snap, req, o, key); ok {
		return r, err
	}
	return e.stickySlow(ctx, req, o, key)
}

// stickyFast answers from memory when the session's assignment holds and
// nothing needs fetching; ok is false when the slow path must run.
func (e *Engine) stickyFast(ctx context.Context, snap *Snapshot, req SelectRequest, o routeOpts, key [32]byte) (*Route, error, bool) {
	f, err := e.stickyCurrent()
	if err != nil {
		return nil, err, true
	}
	a := f.lookup(key)
	now := e.now()
	if a == nil || o.exclude[a.AccountID] || !affinityMatches(a, req.Model) ||
		a.LastSeenAt <= epochMs(now.Add(-stickyTTL)) || a.LastSeenAt <= epochMs(now.Add(-stickyTouchEvery)) {
		return nil, nil, false
	}
	creds, _ := e.mainCredentials()
	r, ok := stickyRouteOf(snap, creds, a.AccountID, now)
	if !ok || r.needsToken || !quotaAgeFresh(r.quota, snap.Settings.QuotaCheckInterval, req.Model, now) {
		return nil, nil, false
	}
	keep, v, why, until := stickyKeep(snap.Settings, &r, req.Model, now)
	if !keep {
		return nil, nil, false
	}
	if v == stickyHold {
		return nil, stickyHoldNoRoute(key, r.id, why, until, now), true
	}
	return e.stickyRoute(snap, creds, &r, req, o, "sticky: session affinity", &StickyInfo{}), nil, true
}

// stickyRouteOf builds the route entry of one account, as stickyRoutes
// would, without listing the others.
func stickyRouteOf(snap *Snapshot, creds MainCredentials, id string, now time.Time) (stickyRoute, bool) {
	s := snap.Settings
	if id == MainAccountID {
		mid := mainIdentity(snap)
		fp := fingerprintFor(snap.Main.LastRefreshError, creds.Refresh)
		if creds.Access == "" || refreshPermanent(snap.Main.LastRefreshError, mid, fp) {
			return stickyRoute{}, false
		}
		r := stickyRoute{id: MainAccountID, quota: mainQuota(snap), qerr: snap.Main.LastQuotaAPIError}
		if until, ok := refreshBackoffUntil(snap.Main.LastRefreshError, mid, now, fp); ok {
			r.blocked, r.blockedUntil = ReasonRefreshBackoff, until
		} else {
			r.needsToken = expired(creds.Access, creds.Expires, now)
		}
		return r, true
	}
	for i := range snap.Accounts {
		a := &snap.Accounts[i]
		if a.ID != id {
			continue
		}
		if a.Type != AccountOAuth || a.Problem != "" || !a.IsEnabled() || a.State.Access == "" {
			return stickyRoute{}, false
		}
		fp := fingerprintFor(a.State.LastRefreshError, a.State.Refresh)
		if refreshPermanent(a.State.LastRefreshError, a.ID, fp) {
			return stickyRoute{}, false
		}
		r := stickyRoute{id: a.ID, order: i + 1, acct: a, quota: a.State.Quota, qerr: a.State.LastQuotaRefreshError}
		if needsRefresh(a.State.Access, a.State.Expires, s.RefreshBeforeExpiry, now) {
			if until, ok := refreshBackoffUntil(a.State.LastRefreshError, a.ID, now, fp); ok {
				r.blocked, r.blockedUntil = ReasonRefreshBackoff, until
			} else {
				r.needsToken = true
			}
		}
		return r, true
	}
	return stickyRoute{}, false
}

func (e *Engine) stickyRoute(snap *Snapshot, creds MainCredentials, r *stickyRoute, req SelectRequest, o routeOpts, why string, info *StickyInfo) *Route {
	var out *Route
	if r.acct == nil {
		out = mainRoute(creds)
	} else {
		out = accountRoute(r.acct)
	}
	out.Sticky = info
	return finish(out, req, o, why)
}

func stickyHoldNoRoute(key [32]byte, id, why string, until, now time.Time) *NoRouteError {
	retry := stickyRetryAfter(key, until.Sub(now))
	return rateNoRoute(stickyHoldMessage, retry, []AccountReason{{AccountID: id, Reason: why, Until: epochMs(until)}})
}

// stickySlow refreshes what is due, then resolves the session under the
// routing state lock: keep its account if it still holds, else allocate.
func (e *Engine) stickySlow(ctx context.Context, req SelectRequest, o routeOpts, key [32]byte) (*Route, error) {
	var failed []AccountReason
	for attempt := 0; ; attempt++ {
		snap, err := e.routeSnapshot(ctx)
		if err != nil {
			return nil, err
		}
		creds, _ := e.mainCredentials()
		now := e.now()
		s := snap.Settings
		routes, _ := stickyRoutes(snap, creds, now)
		// Refresh every route's quota that is not sticky-fresh.
		fetched := false
		for i := range routes {
			r := &routes[i]
			if r.blocked != "" || o.exclude[r.id] || quotaAgeFresh(r.quota, s.QuotaCheckInterval, req.Model, now) || QuotaBackoffActive(r.qerr, now) {
				continue
			}
			if _, err := e.fetchQuota(ctx, r.id); err != nil {
				e.log.Debug("sticky quota check failed", "account", r.id, "err", err)
			}
			fetched = true
		}
		if fetched {
			e.forgetSnapshot()
			if snap, err = e.routeSnapshot(ctx); err != nil {
				return nil, err
			}
			creds, _ = e.mainCredentials()
			now = e.now()
		}
		routes, notRoutes := stickyRoutes(snap, creds, now)
		res, err := e.stickyResolve(ctx, snap, routes, req, o, key)
		if err != nil {
			return nil, err
		}
		if res.route == nil {
			return nil, e.stickyNoRoute(snap, routes, append(append(notRoutes, failed...), res.reasons...), req, key, res)
		}
		r := res.route
		if r.needsToken {
			var terr error
			if r.acct == nil {
				creds, terr = e.ensureMainFresh(ctx, "")
			} else {
				var fresh *Account
				if fresh, terr = e.refreshFallback(ctx, r.id, false); terr == nil {
					r.acct = fresh
				}
				e.forgetSnapshot()
			}
			if terr != nil && attempt < len(routes) {
				failed = append(failed, AccountReason{AccountID: r.id, Reason: shorten(terr.Error(), 240), Until: epochMs(errUntil(terr))})
				o.exclude[r.id] = true
				continue
			}
			if terr != nil {
				return nil, terr
			}
		}
		why := "sticky: session affinity"
		switch {
		case res.info.Migrated:
			why = "sticky: migrated (" + res.why + ")"
		case res.info.Created:
			why = "sticky: new session (weighted allocation)"
		}
		return e.stickyRoute(snap, creds, r, req, o, why, &res.info), nil
	}
}

// stickyResolution is the outcome of resolving a session under the lock.
type stickyResolution struct {
	route   *stickyRoute
	info    StickyInfo
	why     string // why the old assignment moved
	hold    *NoRouteError
	reasons []AccountReason
	// scopedOnly is set when every route failed only the model scope.
	scopedOnly bool
}

func (e *Engine) stickyResolve(ctx context.Context, snap *Snapshot, routes []stickyRoute, req SelectRequest, o routeOpts, key [32]byte) (stickyResolution, error) {
	var res stickyResolution
	err := e.updateSticky(ctx, func(f *stickyFile, now time.Time) (bool, error) {
		res = stickyResolution{}
		s := snap.Settings
		byID := make(map[string]*stickyRoute, len(routes))
		for i := range routes {
			byID[routes[i].id] = &routes[i]
		}
		old := f.lookup(key)
		changed := false
		if old != nil && !affinityMatches(old, req.Model) {
			f.remove(key)
			old, changed = nil, true
		}
		if old != nil {
			r := byID[old.AccountID]
			switch {
			case r == nil:
				res.why = old.AccountID + " is no longer routable"
			case o.exclude[old.AccountID]:
				res.why = old.AccountID + " failed this request"
			default:
				keep, v, why, until := stickyKeep(s, r, req.Model, now)
				if keep {
					if v == stickyHold {
						res.hold = stickyHoldNoRoute(key, r.id, why, until, now)
					}
					res.route = r
					if now.Sub(fromMs(old.LastSeenAt)) >= stickyTouchEvery {
						old.LastSeenAt = epochMs(now)
						return true, nil
					}
					return changed, nil
				}
				res.why = old.AccountID + ": " + why
			}
		}
		// Allocate among the candidates.
		cands := make([]allocCandidate, 0, len(routes))
		scopedFails := 0
		for i := range routes {
			r := &routes[i]
			if o.exclude[r.id] {
				res.reasons = append(res.reasons, AccountReason{AccountID: r.id, Reason: "already tried for this request"})
				continue
			}
			u := stickyCandidate(snap, r, req.Model, now)
			if !u.OK {
				if ModelScopeExhausted(r.quota, req.Model) {
					scopedFails++
				}
				res.reasons = append(res.reasons, reasonOf(r.id, u))
				continue
			}
			cands = append(cands, allocCandidate{ID: r.id, Order: r.order, Quota: r.quota, Known: hasStandardWindows(r.quota)})
		}
		res.scopedOnly = len(routes) > 0 && scopedFails == len(routes)
		family := modelFamily(req.Model)
		id, ok := allocate(cands, f.Assignments, s, req.PromptBytes, family, req.Model, now)
		if !ok {
			for _, c := range cands {
				res.reasons = append(res.reasons, AccountReason{AccountID: c.ID, Reason: "no spendable quota above the reserve"})
			}
			if old != nil {
				f.remove(key)
				return true, nil
			}
			return changed, nil
		}
		r := byID[id]
		res.route = r
		res.info = StickyInfo{Created: old == nil, Migrated: old != nil}
		bytes := req.PromptBytes
		if bytes < 1 {
			bytes = 1
		}
		a := &stickyAssignment{AccountID: id, Family: family, AffinityModelID: req.Model, AssignedAt: epochMs(now),
			LastSeenAt: epochMs(now), InitialInputBytes: bytes, QuotaCheckedAt: r.quota.LatestCheck()}
		f.set(key, a)
		return true, nil
	})
	if err == nil && res.hold != nil {
		return res, res.hold
	}
	return res, err
}

// stickyNoRoute explains a session that no account can take (upstream
// createStickyNoRouteResponse), with the session's retry-after jitter.
func (e *Engine) stickyNoRoute(snap *Snapshot, routes []stickyRoute, reasons []AccountReason, req SelectRequest, key [32]byte, res stickyResolution) *NoRouteError {
	now := e.now()
	s := snap.Settings
	name := forModel(modelName(snap, req.Model))
	creds, _ := e.mainCredentials()
	mainDead := refreshPermanent(snap.Main.LastRefreshError, mainIdentity(snap), creds.Refresh.Fingerprint())
	incomplete := len(routes) == 0 && !mainDead
	var waitUntil time.Time
	for i := range routes {
		if routes[i].blocked == "" && !quotaAgeFresh(routes[i].quota, s.QuotaCheckInterval, req.Model, now) {
			incomplete = true
			if QuotaBackoffActive(routes[i].qerr, now) {
				if t := fromMs(routes[i].qerr.NextRetryAt); waitUntil.IsZero() || t.Before(waitUntil) {
					waitUntil = t
				}
			}
		}
	}
	switch {
	case mainDead:
		return authNoRoute("Main Claude OAuth account requires re-login, and no fallback OAuth account is currently routable"+name+".", reasons)
	case incomplete:
		wait := 60 * time.Second
		if !waitUntil.IsZero() {
			wait = waitUntil.Sub(now)
		}
		return rateNoRoute(stickyWaitingMessage+".", stickyRetryAfter(key, wait), reasons)
	}
	if labels := reloginLabels(snap); len(labels) > 0 {
		return authNoRoute(fmt.Sprintf("No OAuth account is currently routable%s. Fallback Claude OAuth accounts require re-login: %s.", name, strings.Join(labels, ", ")), reasons)
	}
	quotas := make([]*QuotaSnapshot, 0, len(routes))
	for i := range routes {
		quotas = append(quotas, routes[i].quota)
	}
	if res.scopedOnly {
		retry := stickyRetryAfter(key, KillswitchRetryAfter(quotas, req.Model, now))
		return rateNoRoute(fmt.Sprintf("%s weekly limit reached, no routable OAuth accounts. Retry in %s.", modelName(snap, req.Model), retryInText(retry)), retry, reasons)
	}
	retry := stickyRetryAfter(key, KillswitchRetryAfter(quotas, "", now))
	return rateNoRoute(fmt.Sprintf("No OAuth account currently satisfies sticky-balanced quota policy. Retry in %s.", retryInText(retry)), retry, reasons)
}
