package pgstore

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/pgtest"
)

// oauthEndpoint is a token endpoint speaking the real request shape: each
// refresh token works once, a reused one gets 400 invalid_grant.
type oauthEndpoint struct {
	mu           sync.Mutex
	valid        map[string]bool
	calls, reuse int
	n            int
}

func (o *oauthEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]string
	_ = json.NewDecoder(r.Body).Decode(&body)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	tok := body["refresh_token"]
	if !o.valid[tok] {
		o.reuse++
		w.WriteHeader(400)
		_, _ = w.Write([]byte(`{"error":"invalid_grant","error_description":"Refresh token already used"}`))
		return
	}
	delete(o.valid, tok)
	o.n++
	next := fmt.Sprintf("rt-%d", o.n)
	o.valid[next] = true
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", o.n), "refresh_token": next, "expires_in": 3600})
}

// machine is one server's engine on the shared database, with files of
// its own (as if on its own machine) and its events recorded.
type machine struct {
	eng    *core.Engine
	events chan core.Event
}

func newMachine(t *testing.T, conn string, keys *Keys, host, tokenURL string) *machine {
	dir := t.TempDir()
	paths := core.Paths{Config: filepath.Join(dir, core.ConfigFileName), State: filepath.Join(dir, core.StateFileName),
		RoutingState: filepath.Join(dir, "routing.json")}
	pg := openStore(t, conn, keys, host)
	store, err := core.NewStore(core.StoreOptions{Paths: paths, Backend: pg.Backend()})
	require.NoError(t, err)
	m := &machine{events: make(chan core.Event, 1000)}
	m.eng, err = core.New(core.Options{Store: store, Endpoints: core.Endpoints{Token: tokenURL, Usage: "http://127.0.0.1:1/usage", Profile: "http://127.0.0.1:1/profile"},
		OnEvent: func(ev core.Event) {
			select {
			case m.events <- ev:
			default:
			}
		}})
	require.NoError(t, err)
	// Wait for the store's watch to listen (its generation then holds
	// still), so no change is missed.
	require.Eventually(t, func() bool { return pg.Generation() == pg.Generation() }, time.Minute, time.Millisecond)
	return m
}

// TestEngines_shareOneDatabase: two servers refresh the same accounts at
// once; every rotation is done once, nobody reuses a token, and each
// server hears of the other's rotations.
func TestEngines_shareOneDatabase(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	ep := &oauthEndpoint{valid: map[string]bool{}}
	srv := httptest.NewServer(ep)
	defer srv.Close()
	a := newMachine(t, conn, keys, "laptop", srv.URL)
	b := newMachine(t, conn, keys, "desktop", srv.URL)

	const accounts = 3
	for i := 0; i < accounts; i++ {
		ep.valid[fmt.Sprintf("rt-seed-%d", i)] = true
		_, err := a.eng.AddAccount(ctx, core.AccountSpec{ID: fmt.Sprintf("fb-%d", i), Type: record.AccountOAuth, Refresh: secret.Secret(fmt.Sprintf("rt-seed-%d", i))})
		require.NoError(t, err)
	}
	drain(b.events)

	const rounds = 5
	var lat []time.Duration
	for round := 0; round < rounds; round++ {
		for i := 0; i < accounts; i++ {
			id := fmt.Sprintf("fb-%d", i)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for k, m := range []*machine{a, b} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[k] = m.eng.RefreshAccount(ctx, id)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					assert.ErrorIs(t, err, core.ErrInProgress, "the only acceptable failure is the other machine holding the lock")
				}
			}
			// Both machines now see the same, latest tokens.
			va, err := a.eng.GetAccount(ctx, id)
			require.NoError(t, err)
			vb, err := b.eng.GetAccount(ctx, id)
			require.NoError(t, err)
			assert.False(t, va.NeedsRelogin, id)
			assert.Equal(t, va.HasCredential, vb.HasCredential)
		}
		// A rotation by one machine alone reaches the other as an event.
		drain(b.events)
		id := fmt.Sprintf("fb-%d", round%accounts)
		start := time.Now()
		_, err := a.eng.RefreshAccount(ctx, id)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			for {
				select {
				case ev := <-b.events:
					if ev.Kind == core.EventAccountsChanged && contains(ev.Accounts, id) {
						lat = append(lat, time.Since(start))
						return true
					}
				default:
					return false
				}
			}
		}, time.Minute, time.Millisecond, "the other machine hears of the rotation")
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	assert.Zero(t, ep.reuse, "no refresh token was posted twice")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("2 engines, %d accounts, %d concurrent refresh rounds: %d token calls, %d invalid_grant; a rotation reached the other engine as accounts/changed after (from the refresh call's start) p50 %v, max %v",
		accounts, rounds, ep.calls, ep.reuse, lat[len(lat)/2], lat[len(lat)-1])
}

func drain(c chan core.Event) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestEngines_onePollerPerInterval: one machine's quota pass is held in
// its first usage call while another machine runs its pass; each account's
// usage is fetched once across both.
func TestEngines_onePollerPerInterval(t *testing.T) {
	ctx := ctxT(t)
	conn := pgtest.DB(t)
	keys := testKeys(t)
	var mu sync.Mutex
	polls := map[string]int{}
	held, release := make(chan struct{}), make(chan struct{})
	usage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth := r.Header.Get("Authorization")
		polls[auth]++
		first := auth == "Bearer at-0" && polls[auth] == 1
		mu.Unlock()
		if first {
			close(held)
			<-release
		}
		_, _ = w.Write([]byte(`{"five_hour":{"utilization":10},"seven_day":{"utilization":20}}`))
	}))
	defer usage.Close()
	clock := core.NewManualClock(benchNow)
	newEngine := func(host string) *core.Engine {
		dir := t.TempDir()
		pg := openStore(t, conn, keys, host)
		store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{Config: filepath.Join(dir, "a.json"), State: filepath.Join(dir, "s.json"), RoutingState: filepath.Join(dir, "r.json")}, Backend: pg.Backend()})
		require.NoError(t, err)
		e, err := core.New(core.Options{Store: store, Clock: clock,
			Endpoints: core.Endpoints{Token: "http://127.0.0.1:1/token", Usage: usage.URL, Profile: "http://127.0.0.1:1/profile"}})
		require.NoError(t, err)
		return e
	}
	a, b := newEngine("laptop"), newEngine("desktop")
	_, err := a.UpdateConfig(ctx, map[string]json.RawMessage{"quota": json.RawMessage(`{"enabled":true}`)})
	require.NoError(t, err)
	const accounts = 3
	for i := 0; i < accounts; i++ {
		_, err := a.AddAccount(ctx, core.AccountSpec{ID: fmt.Sprintf("fb-%d", i), Type: record.AccountOAuth,
			Access: secret.Secret(fmt.Sprintf("at-%d", i)), Refresh: secret.Secret(fmt.Sprintf("rt-%d", i)), Expires: benchNow.Add(8 * time.Hour).UnixMilli()})
		require.NoError(t, err)
	}
	passA := make(chan error, 1)
	go func() {
		_, err := a.RefreshQuotaDue(ctx)
		passA <- err
	}()
	<-held // a polls fb-0 and waits there
	_, err = b.RefreshQuotaDue(ctx)
	require.NoError(t, err)
	close(release)
	require.NoError(t, <-passA)
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, polls, accounts, "every account polled")
	for k, n := range polls {
		assert.Equal(t, 1, n, "%s polled once across both machines", k)
	}
}
