package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/pgstore"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/pgtest"
	"github.com/acctpool/acctpool/internal/stdioclient"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The size of the run: bounded in work, not in wall time.
const (
	servers      = 4
	accounts     = 6
	opsPerServer = 250
	randomKills  = 10 // SIGKILL of a random server at a random moment
	holderKills  = 4  // SIGKILL of a lock holder inside its token call
	journalKills = 4  // SIGKILL between the token answer and the commit
	probes       = 24 // a rotation on one server, watched from another
)

// run is the state of one chaos run.
type run struct {
	t                    *testing.T
	bin, conn, keyFile   string
	base                 string // the fake endpoint's URL
	ep                   *tokenEndpoint
	slots                []*slot
	ops                  atomic.Int64
	killAt, armAt, probe map[int64]bool // op numbers at which things happen
	journalAt            map[int64]bool
	db                   *pgxpool.Pool  // the run's own connections (commit blocks)
	bg                   sync.WaitGroup // probes and takeovers

	mu           sync.Mutex
	kills        int
	restarts     int
	takeovers    []time.Duration
	windowKills  int // killed between the answer and the commit
	replayed     int // journals a restarted server wrote into the database
	untaken      int
	notifyLat    []time.Duration
	probeSkipped int
	probeFailed  int
	opErrors     map[string]int
	opCount      map[string]int
	opTime       map[string]time.Duration
}

// slot is one "machine": a home directory and the server process that
// currently runs there (started again after each kill).
type slot struct {
	idx  int
	home string
	mu   sync.Mutex
	cur  *server
	n    int // processes started so far
}

// TestChaos: several real servers, each with a home of its own as if on
// its own machine, share one PostgreSQL database and are hammered with
// route/select + route/report, refresh passes, forced refreshes and quota
// refreshes, against a token endpoint that rejects reused refresh tokens,
// while servers are killed with SIGKILL (and started again with the same
// home): random ones at random moments, lock holders inside their token
// calls, and rotating ones after the token endpoint answered and before
// their commit. It asserts: no invalid_grant from a race (a token posted
// again while its first consumer lived), no consumed token posted again
// after its invalid_grant, every pair journalled by a process killed
// before its commit replayed into the database when its machine started
// again, no journal left behind, no account lost (a fresh server refreshes
// every account at the end) other than by a random kill between the
// answer and the journal's sync, every killed holder's account refreshed
// by a survivor, and every probed rotation visible on another server
// (accounts/changed, then accounts/get showing it) within a one-minute
// guard. It prints the figures. CHAOS_SEED picks the same moments again;
// the scheduling of the processes differs from run to run.
func TestChaos(t *testing.T) {
	conn := pgtest.DB(t) // skips, saying why, without PostgreSQL
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := &run{t: t, conn: conn, ep: newTokenEndpoint(), opErrors: map[string]int{}, opCount: map[string]int{}, opTime: map[string]time.Duration{}}
	r.bin = buildServer(t)
	r.keyFile = filepath.Join(t.TempDir(), "store.key")
	keyLine := pgstore.NewKeyLine()
	require.NoError(t, os.WriteFile(r.keyFile, []byte(keyLine+"\n"), 0o600))
	keys, err := pgstore.ParseKeys([]byte(keyLine))
	require.NoError(t, err)
	srv := httptest.NewServer(r.ep)
	defer srv.Close()
	r.base = srv.URL
	r.ep.onHolderKill = r.holderKilled

	ids := seedPool(ctx, t, conn, keys, r.ep)

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
	}
	t.Logf("seed %d (rerun with CHAOS_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	total := int64(servers * opsPerServer)
	r.killAt = pickOps(rng, randomKills, total)
	r.armAt = pickOps(rng, holderKills, total)
	r.probe = pickOps(rng, probes, total)
	r.journalAt = pickOps(rng, journalKills, total)
	r.db, err = pgxpool.New(ctx, conn)
	require.NoError(t, err)
	defer r.db.Close()
	r.ep.holdCommits, r.ep.onJournalKill = r.holdCommits, r.journalKilled

	for i := 0; i < servers; i++ {
		s := &slot{idx: i + 1, home: t.TempDir()}
		r.slots = append(r.slots, s)
		_, err := r.live(s)
		require.NoError(t, err)
	}
	defer func() {
		for _, s := range r.slots {
			if p := s.current(); p != nil && !p.dead() {
				p.kill()
			}
		}
	}()

	began := time.Now()
	var workers sync.WaitGroup
	for _, s := range r.slots {
		workers.Add(1)
		wrng := rand.New(rand.NewPCG(seed, uint64(s.idx)+100))
		go func() {
			defer workers.Done()
			r.work(ctx, s, wrng)
		}()
	}
	workers.Wait()
	r.bg.Wait()
	hammer := time.Since(began)
	r.ep.mu.Lock()
	r.ep.holderKill, r.ep.journalKill = 0, 0 // armed kills that found no holder
	r.ep.mu.Unlock()

	// Every machine runs again (a restart replays its journals), then all
	// stop as hosts stop them.
	for _, s := range r.slots {
		p, err := r.live(s)
		require.NoError(t, err)
		assert.True(t, p.stop(), "%s exits after stdin closes", p.inc)
		r.countReplays(p)
	}
	for _, s := range r.slots {
		left, err := filepath.Glob(filepath.Join(s.home, ".config", "opencode", "acctpool-store-journal.json.acctpool.*.tmp"))
		require.NoError(t, err)
		assert.Empty(t, left, "slot %d: every journal of a killed process was replayed and removed", s.idx)
	}

	// A fresh machine refreshes every account: none is lost.
	fresh := &slot{idx: 0, home: t.TempDir()}
	p, err := r.live(fresh)
	require.NoError(t, err)
	lost, lostInWindow := 0, 0
	var failed []string
	for _, id := range ids {
		if _, err := p.account(ctx, "accounts/refresh", id); err != nil {
			failed = append(failed, id)
			t.Logf("account %s lost: %v", id, err)
		}
	}
	assert.True(t, p.stop())
	if len(failed) > 0 {
		// Which token the database holds tells how it was lost.
		pg, err := pgstore.Open(ctx, pgstore.Options{ConnString: conn, Keys: keys, Host: "check", NoFollow: true})
		require.NoError(t, err)
		snap, err := pg.Load(ctx)
		pg.Close()
		require.NoError(t, err)
		for _, id := range failed {
			lost++
			if a, ok := snap.Account(id); ok && r.consumedInWindow(a.State.Refresh.Reveal()) {
				lostInWindow++
			}
		}
	}

	// Figures.
	ep := r.ep
	ep.mu.Lock()
	races, window, repeats := 0, 0, 0
	perToken := map[string]int{}
	for _, u := range ep.reuses {
		perToken[u.token]++
		if perToken[u.token] > 1 {
			repeats++
		}
		if u.consumerKilled != "" {
			window++
		} else {
			races++
			t.Logf("race: %s's token %s consumed by %s, posted again by %s", u.account, u.token, u.consumer, u.poster)
		}
	}
	calls, rotations := ep.calls, ep.issued
	ep.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("operations by method: %v; time spent by method: %v", r.opCount, r.opTime)
	t.Logf("operation errors (method: code; gone = the server was killed under the call): %v", r.opErrors)
	tp50, tmax := quantile(r.takeovers, 0.5), quantile(r.takeovers, 1)
	np50, np99 := quantile(r.notifyLat, 0.5), quantile(r.notifyLat, 0.99)
	summary := fmt.Sprintf("chaos: %d processes (%d started), %d accounts, %v, %d kills (%d random, %d lock holders in their token call, %d between answer and commit), %d operations, %d token calls, %d rotations, %d journals replayed, invalid_grant %d (races %d / kill-window %d, repeated %d), lost %d (kill-window %d), holder takeover p50 %v max %v (%d of %d), notification latency p50 %v p99 %v (%d probes, %d skipped)",
		servers, r.restarts, accounts, hammer.Round(time.Millisecond), r.kills, r.kills-len(r.takeovers)-r.untaken-r.windowKills, len(r.takeovers)+r.untaken, r.windowKills,
		r.ops.Load(), calls, rotations, r.replayed, races+window, races, window, repeats, lost, lostInWindow,
		tp50, tmax, len(r.takeovers), len(r.takeovers)+r.untaken, np50, np99, len(r.notifyLat), r.probeSkipped)
	t.Log(summary)
	fmt.Println(summary)

	assert.Zero(t, races, "invalid_grant from a race: a token posted while its first consumer lived")
	assert.Zero(t, repeats, "a token that got invalid_grant was posted again")
	assert.Equal(t, lostInWindow, lost, "an account lost other than in the kill window")
	assert.Zero(t, r.untaken, "a killed holder's account was not refreshed by a survivor")
	assert.GreaterOrEqual(t, r.replayed, r.windowKills, "every pair journalled by a process killed before its commit came back")
	assert.Positive(t, r.windowKills, "a process was killed between answer and commit")
	assert.Zero(t, r.probeFailed, "a rotation not visible on another server within %v", guard)
	for _, d := range r.takeovers {
		assert.Less(t, d, guard, "holder takeover")
	}
	for _, d := range r.notifyLat {
		assert.Less(t, d, guard, "notification latency")
	}
	assert.NotEmpty(t, r.notifyLat, "some probe measured")
	assert.Positive(t, rotations)
}

// buildServer builds the stdio server once for the run.
func buildServer(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "stdio-server")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/acctpool/acctpool/cmd/stdio-server")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build the server: %s", out)
	return bin
}

// seedPool writes the shared pool into the database: OAuth fallbacks
// whose tokens are missing (due at once), sticky-balanced routing, quota
// off (routing does not wait for polls).
func seedPool(ctx context.Context, t *testing.T, conn string, keys *pgstore.Keys, ep *tokenEndpoint) []string {
	pg, err := pgstore.Open(ctx, pgstore.Options{ConnString: conn, Keys: keys, Host: "seed", NoFollow: true})
	require.NoError(t, err)
	defer pg.Close()
	dir := t.TempDir()
	store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{Config: filepath.Join(dir, core.ConfigFileName), State: filepath.Join(dir, core.StateFileName), RoutingState: filepath.Join(dir, "routing.json")}, Backend: pg.Backend()})
	require.NoError(t, err)
	eng, err := core.New(core.Options{Store: store})
	require.NoError(t, err)
	_, err = eng.UpdateConfig(ctx, map[string]json.RawMessage{"routing": json.RawMessage(`{"mode":"sticky-balanced"}`), "quota": json.RawMessage(`{"enabled":false}`)})
	require.NoError(t, err)
	var ids []string
	for i := 1; i <= accounts; i++ {
		id := fmt.Sprintf("fb-%d", i)
		_, err := eng.AddAccount(ctx, core.AccountSpec{ID: id, Label: id, Type: record.AccountOAuth, Refresh: secret.Secret(ep.seed(id))})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	return ids
}

// pickOps picks n distinct operation numbers inside the run (not in its
// first or last 5 %).
func pickOps(rng *rand.Rand, n int, total int64) map[int64]bool {
	out := map[int64]bool{}
	for len(out) < n {
		out[total/20+rng.Int64N(total*9/10)] = true
	}
	return out
}

func (s *slot) current() *server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// live returns slot s's running server, starting a new one with the same
// home when the last was killed.
func (r *run) live(s *slot) (*server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && !s.cur.dead() {
		return s.cur, nil
	}
	if s.cur != nil {
		s.cur.waitExit()
		r.countReplays(s.cur)
		r.ep.mu.Lock()
		killed := r.ep.killed[s.cur.inc]
		r.ep.mu.Unlock()
		if killed == "" {
			r.t.Logf("%s exited by itself (%v); stderr:\n%s", s.cur.inc, s.cur.cmd.ProcessState, s.cur.stderr.String())
		}
	}
	s.n++
	inc := fmt.Sprintf("s%d.%d", s.idx, s.n)
	// Each slot is its own machine: its own home and its own host name in
	// the pool (a restart keeps both, as a rebooted machine would).
	args := []string{"--store", r.conn, "--store-key-file", r.keyFile, "--store-host", fmt.Sprintf("machine-%d", s.idx), "--token-url", r.base + "/token/" + inc,
		"--usage-url", r.base + "/usage", "--profile-url", r.base + "/profile", "--log-level", "warn"}
	p, err := start(r.bin, inc, s.home, args)
	if err != nil {
		return nil, err
	}
	r.ep.register(inc, p.cmd.Process.Pid)
	s.cur = p
	r.mu.Lock()
	r.restarts++
	r.mu.Unlock()
	return p, nil
}

// work is one machine's host: opsPerServer operations, restarting the
// server whenever it was killed, and the run's events when their
// operation number comes up.
func (r *run) work(ctx context.Context, s *slot, rng *rand.Rand) {
	for i := 0; i < opsPerServer; i++ {
		p, err := r.live(s)
		if err != nil {
			r.t.Errorf("slot %d: start again: %v", s.idx, err)
			return
		}
		opStart := time.Now()
		method, err := r.op(ctx, p, rng)
		r.tally(method, err, time.Since(opStart))
		n := r.ops.Add(1)
		if r.killAt[n] {
			r.killRandom(rng)
		}
		if r.armAt[n] {
			r.ep.armHolderKill()
		}
		if r.journalAt[n] {
			r.ep.armJournalKill()
		}
		if r.probe[n] {
			r.bg.Add(1)
			prng := rand.New(rand.NewPCG(uint64(n), 7))
			go func() {
				defer r.bg.Done()
				r.probeRotation(ctx, prng)
			}()
		}
	}
}

// op makes one random host call on p.
func (r *run) op(ctx context.Context, p *server, rng *rand.Rand) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	id := fmt.Sprintf("fb-%d", 1+rng.IntN(accounts))
	switch x := rng.IntN(100); {
	case x < 45:
		raw, err := p.call(ctx, "route/select", map[string]any{"sessionId": fmt.Sprintf("session-%d", rng.IntN(48)), "model": "claude-sonnet-4"})
		if err != nil {
			return "route/select", err
		}
		var route struct{ AccountID, Ticket string }
		if err := json.Unmarshal(raw, &route); err != nil {
			return "route/select", err
		}
		status := 200
		if rng.IntN(10) == 0 {
			status = 401 // the route's token refused: a refresh on the request path
		}
		_, err = p.call(ctx, "route/report", map[string]any{"route": map[string]any{"accountId": route.AccountID, "ticket": route.Ticket}, "status": status, "replayable": true})
		return "route/report", err
	case x < 60:
		_, err := p.call(ctx, "accounts/refreshDue", nil)
		return "accounts/refreshDue", err
	case x < 84:
		_, err := p.account(ctx, "accounts/refresh", id)
		return "accounts/refresh", err
	case x < 90: // usage calls are paced (1 s apart per process): few
		_, err := p.account(ctx, "quota/refresh", id)
		return "quota/refresh", err
	default:
		_, err := p.account(ctx, "accounts/get", id)
		return "accounts/get", err
	}
}

func (r *run) tally(method string, err error, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opCount[method]++
	r.opTime[method] += took
	if err == nil {
		return
	}
	var re *stdioclient.Error
	switch {
	case errors.Is(err, errServerGone):
		r.opErrors[method+": gone"]++
	case errors.As(err, &re):
		r.opErrors[fmt.Sprintf("%s: %d", method, re.Code)]++
	default:
		r.opErrors[method+": "+err.Error()]++
	}
}

// killRandom sends SIGKILL to a random machine's server, whatever it is
// doing; its host starts it again at its next operation.
func (r *run) killRandom(rng *rand.Rand) {
	s := r.slots[rng.IntN(len(r.slots))]
	p := s.current()
	if p == nil || p.dead() {
		return
	}
	r.ep.markKilled(p.inc, "random")
	p.kill()
	r.mu.Lock()
	r.kills++
	r.mu.Unlock()
}

// holderKilled runs when the token endpoint killed a lock holder in its
// token call: a survivor is asked to refresh the account, and the delay
// from the kill to the next rotation of it by another machine is kept.
func (r *run) holderKilled(inc, account string, at time.Time) {
	r.mu.Lock()
	r.kills++
	r.mu.Unlock()
	killedSlot := slotOf(inc)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		for attempt := 0; attempt < 3*len(r.slots); attempt++ {
			s := r.slots[attempt%len(r.slots)]
			if strconv.Itoa(s.idx) == killedSlot {
				continue
			}
			p := s.current()
			if p == nil || p.dead() {
				continue
			}
			if _, err := p.account(ctx, "accounts/refresh", account); err == nil {
				break
			}
			if !r.ep.firstRotationAfter(account, at, killedSlot).IsZero() {
				break
			}
		}
		rot := r.ep.firstRotationAfter(account, at, killedSlot)
		r.mu.Lock()
		defer r.mu.Unlock()
		if rot.IsZero() {
			r.untaken++
			r.t.Logf("holder %s killed refreshing %s: no survivor refreshed it", inc, account)
			return
		}
		r.takeovers = append(r.takeovers, rot.Sub(at))
	}()
}

// probeRotation refreshes an account on one live server and waits until
// another live server has both sent accounts/changed naming it and shows
// the rotation (accounts/get: lastRefreshedAt at least the new one). The
// latency runs from the token endpoint's answer to then.
func (r *run) probeRotation(ctx context.Context, rng *rand.Rand) {
	skip := func() {
		r.mu.Lock()
		r.probeSkipped++
		r.mu.Unlock()
	}
	order := rng.Perm(len(r.slots))
	a, b := r.slots[order[0]].current(), r.slots[order[1]].current()
	if a == nil || b == nil || a.dead() || b.dead() {
		skip()
		return
	}
	id := fmt.Sprintf("fb-%d", 1+rng.IntN(accounts))
	ctx, cancel := context.WithTimeout(ctx, guard)
	defer cancel()
	asked := time.Now()
	va, err := a.account(ctx, "accounts/refresh", id)
	if err != nil {
		skip() // killed, busy, or the account judged in a kill window
		return
	}
	r.ep.mu.Lock()
	t0 := r.ep.answeredBy[a.inc+"/"+id]
	r.ep.mu.Unlock()
	if t0.Before(asked) {
		skip() // a adopted another machine's rotation: not its own
		return
	}
	for {
		next := b.notes.next()
		if !b.notes.lastFor(id).Before(t0) {
			vb, err := b.account(ctx, "accounts/get", id)
			if err != nil {
				skip()
				return
			}
			if vb.LastRefreshedAt >= va.LastRefreshedAt {
				r.mu.Lock()
				r.notifyLat = append(r.notifyLat, time.Since(t0))
				r.mu.Unlock()
				return
			}
		}
		select {
		case <-next:
		case <-b.exited:
			skip()
			return
		case <-ctx.Done():
			r.mu.Lock()
			r.probeFailed++
			r.mu.Unlock()
			r.t.Logf("probe: %s's rotation of %s not seen by %s within %v", a.inc, id, b.inc, guard)
			return
		}
	}
}

// countReplays counts the journals server p replayed at its start (its
// log says so, once per account).
func (r *run) countReplays(p *server) {
	n := strings.Count(p.stderr.String(), "restored rotated tokens that a killed process had not saved")
	r.mu.Lock()
	r.replayed += n
	r.mu.Unlock()
}

// holdCommits blocks every state commit (the run holds the state's row
// lock) until lift is called.
func (r *run) holdCommits() (lift func()) {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	tx, err := r.db.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "SELECT name FROM acctpool_write_lock WHERE name = 'state' FOR UPDATE")
	}
	if err != nil {
		r.t.Errorf("hold the state lock: %v", err)
		cancel()
		return func() {}
	}
	return func() {
		_ = tx.Rollback(context.Background())
		cancel()
	}
}

// journalKilled waits until the refresh-lock transaction of process pid
// (incarnation inc) waits for the state lock — its rotation answered and
// journaled, its commit blocked — then kills it and lifts the block.
// There is no event for "a session waits for a lock", so the database is
// asked until it says so (bounded by the guard).
func (r *run) journalKilled(inc string, pid int, account string, lift func()) {
	defer lift()
	var p *server
	for _, s := range r.slots {
		if c := s.current(); c != nil && c.inc == inc {
			p = c
		}
	}
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		var blocked bool
		err := r.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE $1 AND a.wait_event_type = 'Lock')`,
			"acctpool % pid "+strconv.Itoa(pid)).Scan(&blocked)
		if err == nil && blocked {
			break
		}
		select {
		case <-tick.C:
		case <-p.exited:
			return // killed meanwhile by something else
		case <-ctx.Done():
			r.t.Errorf("%s's save of %s never waited for the state lock", inc, account)
			return
		}
	}
	p.kill()
	r.mu.Lock()
	r.kills++
	r.windowKills++
	r.mu.Unlock()
}

// consumedInWindow reports whether refresh token tok was consumed by a
// process killed at a random moment: if its successor is nowhere, the
// kill fell between the answer and the journal's sync (the window no
// store can close). A process killed on purpose after its journal
// (journalKilled) does not count: its pair must come back.
func (r *run) consumedInWindow(tok string) bool {
	r.ep.mu.Lock()
	defer r.ep.mu.Unlock()
	c := r.ep.consumedBy[tok]
	return c != "" && r.ep.killed[c] == "random"
}

// quantile returns the q-quantile of ds (0 when empty).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q * float64(len(s)-1))
	return s[i].Round(10 * time.Microsecond)
}
