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

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
)

// Sticky-balanced constants (BEHAVIOUR.md §5.4).
const (
	stickyTTL        = 7 * 24 * time.Hour
	stickyMax        = 4096
	stickyTouchEvery = time.Hour
	stickyJitterMax  = 21 // seconds: jitter is 0..20 s
)

// Synthetic messages of sticky-balanced routing.
const (
	stickyHoldMessage    = "Sticky OAuth account five-hour quota resets shortly; retaining session affinity."
	stickyWaitingMessage = "Sticky-balanced routing is waiting for current OAuth quota snapshots"
)

// stickyAssignment is one session's account (the routing-state file's
// document, record.RoutingAssignment).
type stickyAssignment = record.RoutingAssignment

// stickyFile is anthropic-auth-routing-state.json as routing holds it: the
// document (whose JSON methods it has) and two indexes built from it.
type stickyFile struct {
	record.RoutingStateFile

	// index maps the raw session hash to its assignment, for lookups
	// without hex encoding.
	index map[[32]byte]*stickyAssignment
	// loads sums the assigned input bytes by account and quota snapshot,
	// kept up to date by set and drop, so a new session's allocation does
	// not walk every assignment.
	loads map[policy.LoadKey]int64
}

func (f *stickyFile) reindex() {
	f.index = make(map[[32]byte]*stickyAssignment, len(f.Assignments))
	f.loads = map[policy.LoadKey]int64{}
	for k, a := range f.Assignments {
		var key [32]byte
		if n, err := hex.Decode(key[:], []byte(k)); err == nil && n == 32 && a != nil {
			f.index[key] = a
		}
		f.count(a, 1)
	}
}

// count adds (sign 1) or takes away (-1) a's input bytes in the sums the
// allocator reads.
func (f *stickyFile) count(a *stickyAssignment, sign int64) {
	if a == nil {
		return
	}
	k := policy.LoadKey{Account: a.AccountID, Checked: a.QuotaCheckedAt}
	if f.loads[k] += sign * a.InitialInputBytes; f.loads[k] == 0 {
		delete(f.loads, k)
	}
}

func (f *stickyFile) lookup(key [32]byte) *stickyAssignment { return f.index[key] }

func (f *stickyFile) set(key [32]byte, a *stickyAssignment) {
	k := hex.EncodeToString(key[:])
	f.count(f.Assignments[k], -1)
	f.Assignments[k] = a
	f.index[key] = a
	f.count(a, 1)
}

func (f *stickyFile) remove(key [32]byte) {
	f.drop(hex.EncodeToString(key[:]))
}

// drop removes the assignment stored under the file key k.
func (f *stickyFile) drop(k string) {
	f.count(f.Assignments[k], -1)
	delete(f.Assignments, k)
	var key [32]byte
	if n, err := hex.Decode(key[:], []byte(k)); err == nil && n == 32 {
		delete(f.index, key)
	}
}

// prune drops assignments idle for the TTL and, beyond the cap, the least
// recently seen ones (BEHAVIOUR.md §1.5). It reports whether anything was
// dropped.
func (f *stickyFile) prune(now time.Time) bool {
	expired := f.pruneExpired(now)
	return f.evictOverCap() || expired
}

// pruneExpired drops the assignments idle for the TTL (and broken ones).
func (f *stickyFile) pruneExpired(now time.Time) bool {
	changed := false
	cutoff := epochMs(now.Add(-stickyTTL))
	for k, a := range f.Assignments {
		if a == nil || a.AccountID == "" || a.LastSeenAt <= cutoff {
			f.drop(k)
			changed = true
		}
	}
	return changed
}

// stickySlack is how far the in-memory routing state may go over the cap
// before it is cut back to it in one sort, so that a new session at the
// cap costs a fraction of a sort instead of a scan of every key. The file
// is always written within the cap.
const stickySlack = 64

// evictInMemory cuts the in-memory routing state back to the cap once it
// is stickySlack over it.
func (f *stickyFile) evictInMemory() {
	if len(f.Assignments) > stickyMax+stickySlack {
		f.evictOverCap()
	}
}

// evictOverCap drops the least recently seen assignments beyond the cap.
// A new session puts the file one over the cap: one scan for the oldest,
// not a sort of every key; only a file far over the cap (written by
// someone else) is sorted.
func (f *stickyFile) evictOverCap() bool {
	extra := len(f.Assignments) - stickyMax
	if extra <= 0 {
		return false
	}
	older := func(ka string, a *stickyAssignment, kb string, b *stickyAssignment) bool {
		if a.LastSeenAt != b.LastSeenAt {
			return a.LastSeenAt < b.LastSeenAt
		}
		return ka < kb
	}
	if extra > 16 {
		keys := make([]string, 0, len(f.Assignments))
		for k := range f.Assignments {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return older(keys[i], f.Assignments[keys[i]], keys[j], f.Assignments[keys[j]])
		})
		for _, k := range keys[:extra] {
			f.drop(k)
		}
		return true
	}
	for range extra {
		var oldK string
		var oldA *stickyAssignment
		for k, a := range f.Assignments {
			if oldA == nil || older(k, a, oldK, oldA) {
				oldK, oldA = k, a
			}
		}
		f.drop(oldK)
	}
	return true
}

func readStickyFile(path string) (*stickyFile, error) {
	f := &stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("%w: Invalid sticky routing state at %s", ErrCorruptFile, path)
	default:
		if err := f.UnmarshalJSON(data); err != nil || f.Version != 1 {
			return nil, fmt.Errorf("%w: Invalid sticky routing state at %s", ErrCorruptFile, path)
		}
	}
	if f.Assignments == nil {
		f.Assignments = map[string]*stickyAssignment{}
	}
	f.reindex()
	return f, nil
}

// stickyCache is the in-memory routing state: the file as last read or
// written, with this process's changes applied at once and written behind
// (BEHAVIOUR.md §1.9). It is read again only when the file on disk
// changes. file is changed in place, under mu only.
type stickyCache struct {
	mu      sync.Mutex
	fi      filestore.Stamp // the version file was read from or written as
	checked time.Time       // wall time fi was last confirmed
	gen     uint64          // the backend's generation of file (with a backend)
	file    *stickyFile
	ver     uint64     // counts replacements of file
	ops     []stickyOp // changes not written yet, in order
	armed   bool       // a write-behind flush is scheduled
	// dropped counts the queued changes dropped over maxQueued since the
	// last write attempt, which names them in one warning.
	dropped int
	// prunedAt is when expired assignments were last dropped in memory.
	prunedAt time.Time
}

// stickyOp is one session's assignment after a change (nil: removed), to
// be replayed onto the file as it is on disk at the next write.
type stickyOp struct {
	key [32]byte
	a   *stickyAssignment
}

func replaySticky(f *stickyFile, ops []stickyOp) {
	for _, op := range ops {
		if op.a == nil {
			f.remove(op.key)
			continue
		}
		a := *op.a
		f.set(op.key, &a)
	}
}

// stickyLoaded makes sure the cached routing state is the file's current
// version (one stat at most every externalRecheck, a read only when
// another process wrote it), with our unwritten changes on top.
func (e *Engine) stickyLoaded(ctx context.Context) error {
	if e.store.backend != nil {
		return e.backendStickyLoaded(context.WithoutCancel(ctx))
	}
	path := e.store.Paths().RoutingState
	c := &e.router().sticky
	wall := e.store.wallNow()
	if !lockUnlessWaiting(ctx, &c.mu) {
		return ErrWouldWait
	}
	if c.file != nil && recentlyChecked(c.checked, wall) {
		c.mu.Unlock()
		return nil
	}
	has, old, ver := c.file != nil, c.fi, c.ver
	c.mu.Unlock()
	if mustWait(ctx) {
		return ErrWouldWait
	}
	fi, err := filestore.StampOf(path)
	if err != nil {
		return err
	}
	if has && old.Same(fi) {
		c.mu.Lock()
		if c.ver == ver {
			c.checked = wall
		}
		c.mu.Unlock()
		return nil
	}
	f, err := readStickyFile(path)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.ver == ver {
		replaySticky(f, c.ops)
		c.file, c.fi, c.checked = f, fi, wall
		c.ver++
	}
	c.mu.Unlock()
	return nil
}

// stickyLookup returns a copy of the session's assignment.
func (e *Engine) stickyLookup(ctx context.Context, key [32]byte) (stickyAssignment, bool, error) {
	if err := e.stickyLoaded(ctx); err != nil {
		return stickyAssignment{}, false, err
	}
	c := &e.router().sticky
	if !lockUnlessWaiting(ctx, &c.mu) {
		return stickyAssignment{}, false, ErrWouldWait
	}
	defer c.mu.Unlock()
	if a := c.file.lookup(key); a != nil {
		return *a, true, nil
	}
	return stickyAssignment{}, false, nil
}

// updateSticky lets fn change the session key's assignment in the
// in-memory routing state, at once and visible to every call of this
// process, and queues the change for the write-behind flush (at most one
// interval later; at once when the store writes through). fn runs under
// the cache's mutex and must do no I/O.
func (e *Engine) updateSticky(ctx context.Context, key [32]byte, fn func(f *stickyFile, now time.Time) (bool, error)) error {
	if err := e.stickyLoaded(ctx); err != nil {
		return err
	}
	if e.store.interval < 0 && mustWait(ctx) {
		return ErrWouldWait // the change would be written at once
	}
	c := &e.router().sticky
	if !lockUnlessWaiting(ctx, &c.mu) {
		return ErrWouldWait
	}
	now := e.now()
	if stickyScanDue(c, now) && mustWait(ctx) {
		// A scan of every assignment is due: not on a caller that must
		// not wait (see TrySelect).
		c.mu.Unlock()
		return ErrWouldWait
	}
	// Expired assignments go at most once a minute in memory (each flush
	// prunes the file): a scan of every key per new session would be most
	// of its cost at the cap, and the paths that read an assignment judge
	// its age themselves.
	if d := now.Sub(c.prunedAt); d >= time.Minute || d < 0 {
		c.file.pruneExpired(now)
		c.prunedAt = now
	}
	changed, err := fn(c.file, now)
	if err != nil || !changed {
		c.mu.Unlock()
		return err
	}
	var rec *stickyAssignment
	if a := c.file.lookup(key); a != nil {
		v := *a
		rec = &v
	}
	c.ops = append(c.ops, stickyOp{key: key, a: rec})
	if extra := len(c.ops) - maxQueued; extra > 0 {
		// A flush that keeps failing, or more new sessions in one
		// write-behind interval than the cap; see maxQueued.
		c.ops = append(c.ops[:0:0], c.ops[extra:]...)
		c.dropped += extra
	}
	c.file.evictInMemory()
	through := e.store.interval < 0
	if !through {
		e.armStickyLocked()
	}
	c.mu.Unlock()
	if through {
		return e.flushSticky(ctx)
	}
	return nil
}

// armStickyLocked schedules the routing state's write-behind flush.
func (e *Engine) armStickyLocked() {
	c := &e.router().sticky
	if c.armed {
		return
	}
	c.armed = true
	e.store.afterFunc(e.store.interval, func() {
		c.mu.Lock()
		c.armed = false
		c.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		defer cancel()
		if err := e.flushSticky(ctx); err != nil {
			e.log.Warn("sticky assignments not written yet; will retry", "err", err)
		}
	})
}

// flushSticky writes the queued sticky changes: under the routing state
// lock it re-reads the file, prunes it, replays the changes and writes it
// once (BEHAVIOUR.md §1.6, §1.7). What it wrote becomes the cache, with the
// changes queued meanwhile on top. A failed write keeps the changes queued.
func (e *Engine) flushSticky(ctx context.Context) error {
	r := e.router()
	c := &r.sticky
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	c.mu.Lock()
	ops, dropped := c.ops, c.dropped
	c.ops, c.dropped = nil, 0
	c.mu.Unlock()
	if dropped > 0 {
		// One warning per burst: the drops since the last write attempt,
		// which comes at most one interval after the first of them.
		e.log.Warn("sticky assignments dropped before they were written: more changes queued than the cap",
			"dropped", dropped, "cap", maxQueued, "path", e.store.Paths().RoutingState)
	}
	if len(ops) == 0 {
		return nil
	}
	err := e.writeSticky(ctx, ops)
	if err != nil {
		c.mu.Lock()
		c.ops = append(ops, c.ops...)
		e.armStickyLocked()
		c.mu.Unlock()
	}
	return err
}

func (e *Engine) writeSticky(ctx context.Context, ops []stickyOp) error {
	if e.store.readOnly {
		return ErrReadOnly
	}
	if e.store.backend != nil {
		return e.backendWriteSticky(ctx, ops)
	}
	path := e.store.Paths().RoutingState
	var f *stickyFile
	fi, err := e.store.files.UpdateRoutingState(ctx, func() ([]byte, error) {
		var err error
		if f, err = readStickyFile(path); err != nil {
			return nil, err
		}
		now := e.now()
		f.prune(now)
		replaySticky(f, ops)
		f.prune(now)
		f.UpdatedAt = epochMs(now)
		data, err := f.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode routing state: %w", err)
		}
		return append(data, '\n'), nil
	})
	if err != nil {
		return err
	}
	c := &e.router().sticky
	c.mu.Lock()
	replaySticky(f, c.ops)
	f.evictInMemory()
	c.file, c.fi, c.checked = f, fi, e.store.wallNow()
	c.ver++
	c.mu.Unlock()
	return nil
}

// stickyRetryAfter adds the session's deterministic jitter (0..20 s, from
// the first four bytes of sha256(sessionId)) to a wait rounded up to whole
// seconds, so held sessions do not all come back at the same moment.
func stickyRetryAfter(sum [32]byte, d time.Duration) time.Duration {
	jitter := time.Duration(binary.BigEndian.Uint32(sum[:4])%stickyJitterMax) * time.Second
	return policy.CeilSeconds(d) + jitter
}

// stickyRoute is one account a sticky session can live on, with the
// judgement on keeping a session there.
type stickyRoute struct {
	sub  policy.Subject
	acct *Account // nil for main
	keep policy.Judgement
}

func (r *stickyRoute) id() string { return r.sub.ID }

// blocked reports whether the route can neither keep nor take sessions
// now (its token is due and its refresh is backed off).
func (r *stickyRoute) blocked() bool { return r.keep.Reason == policy.ReasonRefreshBackoff }

// needsToken reports whether the route's token must be refreshed first.
func (r *stickyRoute) needsToken() bool { return r.keep.Settle&policy.SettleRefresh != 0 }

// stickySubjects lists main and every fallback as sticky subjects.
func stickySubjects(snap *Snapshot, creds MainCredentials) []stickyRoute {
	out := make([]stickyRoute, 0, len(snap.Accounts)+1)
	out = append(out, stickyRoute{sub: mainSubject(snap, creds, true)})
	for i := range snap.Accounts {
		a := &snap.Accounts[i]
		out = append(out, stickyRoute{sub: accountSubject(a), acct: a})
	}
	return out
}

// stickyRoutes lists the accounts a session can live on: main (unless its
// refresh token needs a re-login) and every enabled OAuth fallback with an
// access token and a usable refresh token; the others come back as
// reasons. API-key routes never take part.
func stickyRoutes(snap *Snapshot, creds MainCredentials, model string, now time.Time) ([]stickyRoute, []AccountReason) {
	all := stickySubjects(snap, creds)
	routes := all[:0]
	var out []AccountReason
	for _, r := range all {
		r.keep = policy.Judge(snap.Settings, &r.sub, policy.Need{Purpose: policy.ForStickyKeep, Model: model}, now)
		if !r.keep.Usable && r.keep.Reason.Lasting() {
			out = append(out, reasonOf(r.id(), r.keep))
			continue
		}
		routes = append(routes, r)
	}
	return routes, out
}

// stickyRouteOf is the route entry of one account, as stickyRoutes would
// build it, without judging the others.
func stickyRouteOf(snap *Snapshot, creds MainCredentials, id, model string, now time.Time) (stickyRoute, bool) {
	r := stickyRoute{}
	if id == MainAccountID {
		r.sub = mainSubject(snap, creds, true)
	} else {
		a, ok := snap.Account(id)
		if !ok || a.ID != id {
			return r, false
		}
		r.sub, r.acct = accountSubject(a), a
	}
	r.keep = policy.Judge(snap.Settings, &r.sub, policy.Need{Purpose: policy.ForStickyKeep, Model: model}, now)
	return r, r.keep.Usable || !r.keep.Reason.Lasting()
}

func sessionKey(sessionID string) [32]byte { return sha256.Sum256([]byte(sessionID)) }

// affinityMatches reports whether an assignment's affinity is the
// request's: the model id, or the family when the request names no model.
// A change forces a new assignment.
func affinityMatches(a *stickyAssignment, model string) bool {
	if model != "" {
		return a.AffinityModelID == model
	}
	return a.AffinityModelID == "" && a.Family == policy.ModelFamily("")
}

// selectSticky routes a request of a sticky session: the session's account
// while it holds, otherwise a new one from the weighted deficit allocator
// (BEHAVIOUR.md §5.4).
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
	a, found, err := e.stickyLookup(ctx, key)
	if err != nil {
		return nil, err, true
	}
	now := e.now()
	if !found || o.exclude[a.AccountID] || !affinityMatches(&a, req.Model) ||
		a.LastSeenAt <= epochMs(now.Add(-stickyTTL)) || a.LastSeenAt <= epochMs(now.Add(-stickyTouchEvery)) {
		return nil, nil, false
	}
	creds, _ := e.mainCredentials()
	r, ok := stickyRouteOf(snap, creds, a.AccountID, req.Model, now)
	if !ok || !r.keep.Usable || r.needsToken() || !policy.QuotaAgeFresh(r.sub.Quota, snap.Settings.QuotaCheckInterval, req.Model, now) {
		return nil, nil, false
	}
	if r.keep.Hold {
		return nil, stickyHoldNoRoute(key, r.id(), r.keep, now), true
	}
	return e.stickyRoute(creds, &r, req, o, "sticky: session affinity", &StickyInfo{}), nil, true
}

func (e *Engine) stickyRoute(creds MainCredentials, r *stickyRoute, req SelectRequest, o routeOpts, why string, info *StickyInfo) *Route {
	var out *Route
	if r.acct == nil {
		out = mainRoute(creds)
	} else {
		out = accountRoute(r.acct)
	}
	out.Sticky = info
	return finish(out, req, o, why)
}

func stickyHoldNoRoute(key [32]byte, id string, j policy.Judgement, now time.Time) *NoRouteError {
	retry := stickyRetryAfter(key, j.Until.Sub(now))
	return rateNoRoute(stickyHoldMessage, retry, []AccountReason{reasonOf(id, j)})
}

// stickySlow polls what is due, then resolves the session under the
// routing state lock: keep its account if it still holds, else allocate;
// then refreshes the chosen route's token when it is due.
func (e *Engine) stickySlow(ctx context.Context, req SelectRequest, o routeOpts, key [32]byte) (*Route, error) {
	var failed []AccountReason
	for attempt := 0; ; attempt++ {
		snap, creds, err := e.stickyPoll(ctx, req, o)
		if err != nil {
			return nil, err
		}
		routes, notRoutes := stickyRoutes(snap, creds, req.Model, e.now())
		if stickyWouldRefresh(ctx, routes) {
			return nil, ErrWouldWait
		}
		res, err := e.stickyResolve(ctx, snap, routes, req, o, key)
		if err != nil {
			return nil, err
		}
		if res.route == nil {
			return nil, e.stickyNoRoute(snap, routes, append(append(notRoutes, failed...), res.reasons...), req, key, res)
		}
		r := res.route
		if r.needsToken() {
			var terr error
			if r.acct == nil {
				creds, terr = e.ensureMainFresh(ctx, "")
			} else {
				var fresh *Account
				if fresh, terr = e.refreshFallback(ctx, r.id(), false); terr == nil {
					r.acct = fresh
				}
			}
			if terr != nil && attempt < len(routes) {
				failed = append(failed, AccountReason{AccountID: r.id(), Reason: shorten(terr.Error(), 240), Until: epochMs(errUntil(terr))})
				o.exclude[r.id()] = true
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
		return e.stickyRoute(creds, r, req, o, why, &res.info), nil
	}
}

// stickyPoll polls the quota of every route whose judgement asks for it
// and returns the snapshot to resolve the session on.
func (e *Engine) stickyPoll(ctx context.Context, req SelectRequest, o routeOpts) (*Snapshot, MainCredentials, error) {
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return nil, MainCredentials{}, err
	}
	creds, _ := e.mainCredentials()
	routes, _ := stickyRoutes(snap, creds, req.Model, e.now())
	fetched := false
	for i := range routes {
		r := &routes[i]
		if o.exclude[r.id()] || r.keep.Settle&policy.SettleQuota == 0 {
			continue
		}
		if _, err := e.fetchQuota(ctx, r.id()); err != nil {
			e.log.Debug("sticky quota check failed", "account", r.id(), "err", err)
		}
		fetched = true
	}
	if !fetched {
		return snap, creds, nil
	}
	if snap, err = e.routeSnapshot(ctx); err != nil {
		return nil, MainCredentials{}, err
	}
	creds, _ = e.mainCredentials()
	return snap, creds, nil
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
	err := e.updateSticky(ctx, key, func(f *stickyFile, now time.Time) (bool, error) {
		res = stickyResolution{}
		old := f.lookup(key)
		changed := false
		if old != nil && !affinityMatches(old, req.Model) {
			f.remove(key)
			old, changed = nil, true
		}
		if old != nil {
			if kept, touched := stickyKeepOld(snap.Settings, routes, old, req, o, now, key, &res); kept {
				return changed || touched, nil
			}
		}
		return stickyAllocate(snap.Settings, routes, f, old, key, req, o, now, &res) || changed, nil
	})
	if err == nil && res.hold != nil {
		return res, res.hold
	}
	return res, err
}

// stickyKeepOld keeps a session on its assigned account when the keep
// judgement allows it, touching lastSeenAt at most once an hour.
func stickyKeepOld(s policy.Settings, routes []stickyRoute, old *stickyAssignment, req SelectRequest, o routeOpts, now time.Time, key [32]byte, res *stickyResolution) (kept, touched bool) {
	var r *stickyRoute
	for i := range routes {
		if routes[i].id() == old.AccountID {
			r = &routes[i]
		}
	}
	switch {
	case r == nil:
		res.why = old.AccountID + " is no longer routable"
		return false, false
	case o.exclude[old.AccountID]:
		res.why = old.AccountID + " failed this request"
		return false, false
	}
	j := policy.Judge(s, &r.sub, policy.Need{Purpose: policy.ForStickyKeep, Model: req.Model}, now)
	if !j.Usable {
		res.why = old.AccountID + ": " + j.Text()
		return false, false
	}
	if j.Hold {
		res.hold = stickyHoldNoRoute(key, r.id(), j, now)
	}
	res.route = r
	if now.Sub(fromMs(old.LastSeenAt)) >= stickyTouchEvery {
		old.LastSeenAt = epochMs(now)
		return true, true
	}
	return true, false
}

// stickyAllocate gives the session a new account among the routes whose
// new-session judgement is usable, by the weighted deficit allocator. It
// reports whether the file changed.
func stickyAllocate(s policy.Settings, routes []stickyRoute, f *stickyFile, old *stickyAssignment, key [32]byte, req SelectRequest, o routeOpts, now time.Time, res *stickyResolution) bool {
	cands := make([]policy.AllocCandidate, 0, len(routes))
	scopedFails := 0
	for i := range routes {
		r := &routes[i]
		if o.exclude[r.id()] {
			res.reasons = append(res.reasons, AccountReason{AccountID: r.id(), Reason: "already tried for this request"})
			continue
		}
		if j := policy.Judge(s, &r.sub, policy.Need{Purpose: policy.ForStickyNew, Model: req.Model}, now); !j.Usable {
			if policy.ModelScopeExhausted(r.sub.Quota, req.Model) {
				scopedFails++
			}
			res.reasons = append(res.reasons, reasonOf(r.id(), j))
			continue
		}
		cands = append(cands, policy.AllocCandidate{ID: r.id(), Order: r.sub.Order, Quota: r.sub.Quota, Known: policy.HasStandardWindows(r.sub.Quota)})
	}
	res.scopedOnly = len(routes) > 0 && scopedFails == len(routes)
	family := policy.ModelFamily(req.Model)
	id, ok := policy.AllocateBy(cands, f.loads, s, req.PromptBytes, family, req.Model, now)
	if !ok {
		for _, c := range cands {
			res.reasons = append(res.reasons, AccountReason{AccountID: c.ID, Reason: "no spendable quota above the reserve"})
		}
		if old != nil {
			f.remove(key)
			return true
		}
		return false
	}
	for i := range routes {
		if routes[i].id() == id {
			res.route = &routes[i]
		}
	}
	res.info = StickyInfo{Created: old == nil, Migrated: old != nil}
	bytes := req.PromptBytes
	if bytes < 1 {
		bytes = 1
	}
	f.set(key, &stickyAssignment{AccountID: id, Family: family, AffinityModelID: req.Model, AssignedAt: epochMs(now),
		LastSeenAt: epochMs(now), InitialInputBytes: bytes, QuotaCheckedAt: res.route.sub.Quota.LatestCheck()})
	return true
}

// stickyNoRoute explains a session that no account can take (upstream
// createStickyNoRouteResponse), with the session's retry-after jitter.
func (e *Engine) stickyNoRoute(snap *Snapshot, routes []stickyRoute, reasons []AccountReason, req SelectRequest, key [32]byte, res stickyResolution) *NoRouteError {
	now := e.now()
	s := snap.Settings
	name := forModel(modelName(snap, req.Model))
	creds, _ := e.mainCredentials()
	mainDead := policy.NeedsRelogin(snap.Main.LastRefreshError, mainIdentity(snap), creds.Refresh.Fingerprint())
	incomplete := len(routes) == 0 && !mainDead
	var waitUntil time.Time
	for i := range routes {
		r := &routes[i]
		if !r.blocked() && !policy.QuotaAgeFresh(r.sub.Quota, s.QuotaCheckInterval, req.Model, now) {
			incomplete = true
			if policy.QuotaBackoffActive(r.sub.QuotaError, now) {
				if t := fromMs(r.sub.QuotaError.NextRetryAt); waitUntil.IsZero() || t.Before(waitUntil) {
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
	quotas := make([]*record.QuotaSnapshot, 0, len(routes))
	for i := range routes {
		quotas = append(quotas, routes[i].sub.Quota)
	}
	if res.scopedOnly {
		retry := stickyRetryAfter(key, policy.KillswitchRetryAfter(quotas, req.Model, now))
		return rateNoRoute(fmt.Sprintf("%s weekly limit reached, no routable OAuth accounts. Retry in %s.", modelName(snap, req.Model), policy.RetryInText(retry)), retry, reasons)
	}
	retry := stickyRetryAfter(key, policy.KillswitchRetryAfter(quotas, "", now))
	return rateNoRoute(fmt.Sprintf("No OAuth account currently satisfies sticky-balanced quota policy. Retry in %s.", policy.RetryInText(retry)), retry, reasons)
}
