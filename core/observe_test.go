package core

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/internal/atomicfile"
	"github.com/acctpool/acctpool/core/record"
)

// manualTimers is an AfterFunc whose functions run only when a test fires
// them, so that no test waits for a write-behind interval.
type manualTimers struct {
	mu  sync.Mutex
	fns []func()
	// asked records the intervals asked for.
	asked []time.Duration
}

// AfterFunc records f; it runs at the next fire.
func (m *manualTimers) AfterFunc(d time.Duration, f func()) func() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fns = append(m.fns, f)
	m.asked = append(m.asked, d)
	return func() bool { return false }
}

// fire runs the scheduled functions and returns how many ran.
func (m *manualTimers) fire() int {
	m.mu.Lock()
	fns := m.fns
	m.fns = nil
	m.mu.Unlock()
	for _, f := range fns {
		f()
	}
	return len(fns)
}

// scheduled returns how many functions wait for the next fire.
func (m *manualTimers) scheduled() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.fns)
}

// reportServed reports a served response with rate-limit headers on r.
func reportServed(t *testing.T, env *testEnv, r *Route, five string) {
	t.Helper()
	res, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: map[string]string{
		"anthropic-ratelimit-unified-5h-utilization": five, "anthropic-ratelimit-unified-7d-utilization": "0.1"}})
	require.NoError(t, err)
	require.Equal(t, ActionReturn, res.Action)
}

// Observations are in memory at once and on disk only with the flush,
// which writes them all in one write (BEHAVIOUR.md §1.9).
func TestObservations_writtenBehindInOneWrite(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	require.Equal(t, "fb", r.AccountID)
	before, err := os.ReadFile(env.paths.State)
	require.NoError(t, err)
	writes := atomicfile.Commits(env.paths.State)
	for i, five := range []string{"0.2", "0.3", "0.4"} {
		env.clock.Advance(time.Second)
		reportServed(t, env, r, five)
		snap, err := env.engine.routeSnapshot(env.ctx())
		require.NoError(t, err)
		a, ok := snap.Account("fb")
		require.True(t, ok)
		assert.Equal(t, ms(env.clock.Now()), a.State.LastUsed, "report %d: lastUsed seen by the next call", i)
		require.NotNil(t, a.State.Quota.FiveHour)
		assert.InDelta(t, 100-100*mustFloat(t, five), a.State.Quota.FiveHour.RemainingPercent, 0.001)
	}
	after, err := os.ReadFile(env.paths.State)
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "nothing written on the request path")
	assert.Equal(t, writes, atomicfile.Commits(env.paths.State))
	require.Equal(t, 1, env.timers.scheduled(), "one flush scheduled for the three observations")
	assert.Equal(t, []time.Duration{defaultWriteBehind}, env.timers.asked)

	assert.Equal(t, 1, env.timers.fire())
	assert.Equal(t, writes+1, atomicfile.Commits(env.paths.State), "one write for all of them")
	st := env.accountState("fb")
	assert.Equal(t, float64(ms(env.clock.Now())), st["lastUsed"])
	q, _ := st["quota"].(map[string]any)
	five, _ := q["five_hour"].(map[string]any)
	assert.Equal(t, float64(60), five["remainingPercent"])
	assert.Equal(t, "access-fb", string(env.engine.mustAccount(t, "fb").State.Access), "credentials untouched")

	assert.Equal(t, 0, env.timers.fire(), "nothing left to flush")
	assert.Equal(t, writes+1, atomicfile.Commits(env.paths.State))
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	require.NoError(t, json.Unmarshal([]byte(s), &f))
	return f
}

func (e *Engine) mustAccount(t *testing.T, id string) *Account {
	t.Helper()
	snap, err := e.store.Load(context.Background())
	require.NoError(t, err)
	a, ok := snap.Account(id)
	require.True(t, ok)
	return a
}

// The flush re-reads the file under the state lock and applies the
// observations to what another process wrote meanwhile; a credential
// write of ours carries the queued observations along.
func TestObservations_mergedWithOtherWriters(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)}, fb{id: "fb2", quota: fq(80, 80)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	env.clock.Advance(time.Second)
	reportServed(t, env, r, "0.4")

	other, err := NewStore(StoreOptions{Paths: env.paths, WriteBehind: -1})
	require.NoError(t, err)
	_, err = other.UpdateState(env.ctx(), func(st *record.StateFile) error {
		st.Accounts["fb"].Access, st.Accounts["fb"].Refresh, st.Accounts["fb"].LastRefreshedAt = "sk-ant-oat01-rotated", "sk-ant-ort01-rotated", ms(testStart)
		return nil
	})
	require.NoError(t, err)

	require.Equal(t, 1, env.timers.fire())
	st := env.accountState("fb")
	assert.Equal(t, "sk-ant-oat01-rotated", st["access"], "the other writer's rotation is kept")
	assert.Equal(t, float64(ms(env.clock.Now())), st["lastUsed"], "and our observation applied on top")

	// A credential write carries what is queued.
	env.clock.Advance(time.Second)
	r2, err := env.engine.Select(env.ctx(), SelectRequest{Exclude: []string{"fb"}})
	require.NoError(t, err)
	require.Equal(t, "fb2", r2.AccountID)
	reportServed(t, env, r2, "0.5")
	_, err = env.engine.store.UpdateState(env.ctx(), func(st *record.StateFile) error {
		st.Accounts["fb"].Expires = ms(testStart.Add(9 * time.Hour))
		return nil
	})
	require.NoError(t, err)
	writes := atomicfile.Commits(env.paths.State)
	env.timers.fire()
	assert.Equal(t, writes, atomicfile.Commits(env.paths.State), "the queue went out with the credential write")
	assert.Equal(t, float64(ms(env.clock.Now())), env.accountState("fb2")["lastUsed"])
}

// A flush that cannot write (a corrupt file) leaves the file alone and
// keeps the observations for the next one.
func TestObservations_failedFlushKeepsThem(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	good, err := os.ReadFile(env.paths.State)
	require.NoError(t, err)
	env.clock.Advance(time.Second)
	reportServed(t, env, r, "0.4")
	require.NoError(t, os.WriteFile(env.paths.State, []byte("{broken"), 0o600))

	err = env.engine.Flush(env.ctx())
	require.ErrorIs(t, err, ErrCorruptFile)
	raw, _ := os.ReadFile(env.paths.State)
	assert.Equal(t, "{broken", string(raw), "a corrupt file is never overwritten")

	require.NoError(t, os.WriteFile(env.paths.State, good, 0o600))
	require.Equal(t, 1, env.timers.scheduled(), "the failed flush scheduled another")
	env.timers.fire()
	assert.Equal(t, float64(ms(env.clock.Now())), env.accountState("fb")["lastUsed"])
}

// A negative interval writes each observation at once.
func TestObservations_writeThrough(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	var err error
	env.engine.store, err = NewStore(StoreOptions{Paths: env.paths, WriteBehind: -1, AfterFunc: env.timers.AfterFunc})
	require.NoError(t, err)
	r, err := env.engine.Select(env.ctx(), SelectRequest{})
	require.NoError(t, err)
	env.clock.Advance(time.Second)
	reportServed(t, env, r, "0.4")
	assert.Equal(t, float64(ms(env.clock.Now())), env.accountState("fb")["lastUsed"])
	assert.Zero(t, env.timers.scheduled())
}

// The snapshot a write produces is the new cache: no read after our own
// writes. Another process's write is read within the recheck window; a
// generation that moved without a snapshot means read again.
func TestStore_writeIsTheNewCache(t *testing.T) {
	cfg, state := routeFiles(t, "", nil, fb{id: "fb", quota: fq(80, 80)})
	dir := t.TempDir()
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	require.NoError(t, os.WriteFile(paths.Config, []byte(cfg), 0o600))
	require.NoError(t, os.WriteFile(paths.State, []byte(state), 0o600))
	wall := testStart
	var wallMu sync.Mutex
	now := func() time.Time { wallMu.Lock(); defer wallMu.Unlock(); return wall }
	advance := func(d time.Duration) { wallMu.Lock(); wall = wall.Add(d); wallMu.Unlock() }
	s, err := NewStore(StoreOptions{Paths: paths, WallClock: now, AfterFunc: (&manualTimers{}).AfterFunc})
	require.NoError(t, err)
	ctx := context.Background()

	_, reloaded, err := s.current(ctx)
	require.NoError(t, err)
	assert.True(t, reloaded, "first read")
	written, err := s.UpdateState(ctx, func(st *record.StateFile) error { st.Accounts["fb"].LastUsed = 7; return nil })
	require.NoError(t, err)
	cur, reloaded, err := s.current(ctx)
	require.NoError(t, err)
	assert.False(t, reloaded)
	assert.Same(t, written, cur, "the write's snapshot is the cache")
	advance(time.Minute)
	cur, reloaded, err = s.current(ctx)
	require.NoError(t, err)
	assert.False(t, reloaded, "files unchanged since our write: a stat, no read")
	assert.Same(t, written, cur)

	other, err := NewStore(StoreOptions{Paths: paths})
	require.NoError(t, err)
	_, err = other.UpdateState(ctx, func(st *record.StateFile) error { st.Accounts["fb"].LastUsed = 9; return nil })
	require.NoError(t, err)
	advance(time.Minute)
	cur, reloaded, err = s.current(ctx)
	require.NoError(t, err)
	assert.True(t, reloaded, "another process wrote")
	a, _ := cur.Account("fb")
	assert.Equal(t, int64(9), a.State.LastUsed)

	s.gen.Add(1) // a change of ours without a snapshot (setPending)
	_, reloaded, err = s.current(ctx)
	require.NoError(t, err)
	assert.True(t, reloaded, "invalidated by generation")
}

// Sticky assignments are observations: a new session is routed from
// memory at once, seen by the next call, and written with the flush.
func TestSticky_newSessionWrittenBehind(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, &record.MainState{Quota: fq(90, 90)}, fb{id: "fb", quota: fq(90, 90)})
	req := SelectRequest{SessionID: "s1", Model: "claude-opus-4-7"}
	r, err := env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	assert.Equal(t, &StickyInfo{Created: true}, r.Sticky)
	require.NoFileExists(t, env.paths.RoutingState)
	again, err := env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	assert.Equal(t, r.AccountID, again.AccountID)
	assert.Equal(t, &StickyInfo{}, again.Sticky, "kept from memory")
	require.Equal(t, 1, env.timers.fire(), "one flush, of the routing state")
	raw, err := os.ReadFile(env.paths.RoutingState)
	require.NoError(t, err)
	key := sessionKey("s1")
	assert.Contains(t, string(raw), fmt.Sprintf("%x", key[:]))
	writes := atomicfile.Commits(env.paths.RoutingState)
	_, err = env.engine.Select(env.ctx(), req)
	require.NoError(t, err)
	assert.Zero(t, env.timers.fire())
	assert.Equal(t, writes, atomicfile.Commits(env.paths.RoutingState))
}

// Pruning at the cap drops the least recently seen, one scan for a file
// just over it and a sort only far over it.
func TestStickyFile_evictOverCap(t *testing.T) {
	for _, over := range []int{1, 16, 17, 100} {
		t.Run(fmt.Sprint(over), func(t *testing.T) {
			f := &stickyFile{RoutingStateFile: record.RoutingStateFile{Version: 1, Assignments: map[string]*stickyAssignment{}}}
			f.reindex()
			for i := 0; i < stickyMax+over; i++ {
				// Seen times shuffled against the insertion order.
				seen := int64((i * 7919) % (stickyMax + over))
				f.set(sessionKey(fmt.Sprint(i)), &stickyAssignment{AccountID: "a", LastSeenAt: 1000 + seen})
			}
			require.True(t, f.evictOverCap())
			assert.Len(t, f.Assignments, stickyMax)
			assert.Len(t, f.index, stickyMax)
			for _, a := range f.Assignments {
				assert.GreaterOrEqual(t, a.LastSeenAt, int64(1000+over), "only the oldest went")
			}
			assert.False(t, f.evictOverCap())
		})
	}
}

// Writes per call, counted: route/report on a fallback with rate-limit
// headers writes nothing on the call, at 1 or 64 calls in flight, and one
// flush writes them all in one file replacement (at most one write per
// flushEarlyAt calls in a burst).
func TestObservations_writesPerCall(t *testing.T) {
	for _, inflight := range []int{1, 64} {
		t.Run(fmt.Sprintf("in_flight=%d", inflight), func(t *testing.T) {
			env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
			r, err := env.engine.Select(env.ctx(), SelectRequest{})
			require.NoError(t, err)
			const perWorker = 20
			writes := atomicfile.Commits(env.paths.State)
			var wg sync.WaitGroup
			for range inflight {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range perWorker {
						if _, err := env.engine.Report(env.ctx(), ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: map[string]string{
							"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1"}}); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			assert.Equal(t, writes, atomicfile.Commits(env.paths.State), "%d calls, no write on the request path", inflight*perWorker)
			// The interval's flush, plus one at once per full batch.
			assert.Equal(t, 1+inflight*perWorker/flushEarlyAt, env.timers.scheduled(), "one flush pending for all of them, and one per batch of flushEarlyAt")
			env.timers.fire()
			assert.Equal(t, writes+1, atomicfile.Commits(env.paths.State), "one write for them all")
			assert.Equal(t, float64(60), env.accountState("fb")["quota"].(map[string]any)["five_hour"].(map[string]any)["remainingPercent"])
		})
	}
}

// A flush that keeps failing does not let the queue grow without bound:
// the oldest observations go; the newest are written once the file can
// be.
func TestObservations_queueBounded(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	_, err := env.engine.routeSnapshot(env.ctx())
	require.NoError(t, err)
	for i := range maxQueued + 10 {
		_, err := env.engine.store.observeState(env.ctx(), "fb", func(st *record.StateFile) error {
			st.Accounts["fb"].LastUsed = int64(i + 1)
			return nil
		})
		require.NoError(t, err)
	}
	assert.Len(t, env.engine.store.queued(), maxQueued)
	require.NoError(t, env.engine.Flush(env.ctx()))
	assert.Equal(t, float64(maxQueued+10), env.accountState("fb")["lastUsed"], "the newest kept")
}

// A burst of observations is written in batches rather than dropped: at
// flushEarlyAt queued observations a flush is asked for at once (not at
// the end of the interval), once per batch, and it writes them all.
func TestObservations_burstFlushesEarly(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	_, err := env.engine.routeSnapshot(env.ctx())
	require.NoError(t, err)
	observe := func(i int) {
		_, err := env.engine.store.observeState(env.ctx(), "fb", func(st *record.StateFile) error {
			st.Accounts["fb"].LastUsed = int64(i)
			return nil
		})
		require.NoError(t, err)
	}
	for i := 1; i < flushEarlyAt; i++ {
		observe(i)
	}
	env.timers.mu.Lock()
	assert.Equal(t, []time.Duration{defaultWriteBehind}, env.timers.asked, "below a batch: only the interval's flush")
	env.timers.mu.Unlock()
	for i := flushEarlyAt; i < flushEarlyAt+10; i++ {
		observe(i)
	}
	env.timers.mu.Lock()
	assert.Equal(t, []time.Duration{defaultWriteBehind, 0}, env.timers.asked, "a full batch asks for one flush at once")
	env.timers.mu.Unlock()

	writes := atomicfile.Commits(env.paths.State)
	assert.Equal(t, 2, env.timers.fire())
	assert.Equal(t, writes+1, atomicfile.Commits(env.paths.State), "the batch is one write")
	assert.Empty(t, env.engine.store.queued(), "nothing dropped, nothing left")
	assert.Equal(t, float64(flushEarlyAt+9), env.accountState("fb")["lastUsed"])
}
