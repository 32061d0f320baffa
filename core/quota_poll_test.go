package core

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuotaPollLockNames(t *testing.T) {
	tests := []struct{ id, want string }{
		{"fb", "opencode-fallback-quota-refresh-fb"},
		{"Work.1_a-b", "opencode-fallback-quota-refresh-Work.1_a-b"},
		{"a b/c", "opencode-fallback-quota-refresh-a-b-c"},
		{"x::ü//y", "opencode-fallback-quota-refresh-x-y"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, stateFileSource{}.quotaLock(tc.id), tc.id)
	}
	assert.Equal(t, "opencode-main-quota-refresh", hostSource{}.quotaLock(MainAccountID))
}

// withQuota is oneFallback's state with a quota snapshot checked at
// checked and, when backoffUntil is set, an active quota error.
func withQuota(checked, backoffUntil time.Time) (string, string) {
	cfg := `{"version":1,"accounts":[{"id":"fb","label":"fb","type":"oauth","addedAt":1}]}`
	rec := ""
	if !backoffUntil.IsZero() {
		rec = `,"lastQuotaRefreshError":{"message":"Claude quota check failed: 429","checkedAt":` + itoa(ms(checked)) +
			`,"nextRetryAt":` + itoa(ms(backoffUntil)) + `,"retryCount":1}`
	}
	st := `{"version":1,"accounts":{"fb":{"access":"sk-ant-oat01-ACCESSPLANT","refresh":"sk-ant-ort01-REFRESHPLANT","expires":` +
		itoa(ms(testStart.Add(8*time.Hour))) + `,"quota":{"five_hour":{"usedPercent":30,"remainingPercent":70,"checkedAt":` + itoa(ms(checked)) +
		`},"seven_day":{"usedPercent":10,"remainingPercent":90,"checkedAt":` + itoa(ms(checked)) + `},"source":"poll","checkedAt":` + itoa(ms(checked)) + `}` +
		rec + `}}}`
	return cfg, st
}

// A backed-off explicit quota/refresh answers with the cached snapshot,
// marked not fetched, as upstream's quota manager does; with nothing
// cached the backoff is the error.
func TestRefreshQuotaBackedOffReturnsCached(t *testing.T) {
	t.Run("cached snapshot", func(t *testing.T) {
		cfg, st := withQuota(testStart.Add(-time.Minute), testStart.Add(time.Minute))
		env := newTestEnv(t, cfg, st)
		v, err := env.engine.RefreshQuota(env.ctx(), "fb")
		require.NoError(t, err)
		require.NotNil(t, v.Fetched)
		assert.False(t, *v.Fetched)
		require.NotNil(t, v.Quota)
		assert.Equal(t, 70.0, v.Quota.FiveHour.RemainingPercent)
		assert.Equal(t, 0, env.fake.count("usage"))
	})
	t.Run("nothing cached", func(t *testing.T) {
		cfg, _ := oneFallback(testStart.Add(8 * time.Hour))
		st := `{"version":1,"accounts":{"fb":{"access":"a","refresh":"r","expires":` + itoa(ms(testStart.Add(8*time.Hour))) +
			`,"lastQuotaRefreshError":{"message":"Claude quota check failed: 429","checkedAt":` + itoa(ms(testStart)) + `,"nextRetryAt":` + itoa(ms(testStart.Add(time.Minute))) + `,"retryCount":1}}}}`
		env := newTestEnv(t, cfg, st)
		_, err := env.engine.RefreshQuota(env.ctx(), "fb")
		assert.ErrorIs(t, err, ErrQuotaBackoff)
	})
	t.Run("fetched now", func(t *testing.T) {
		cfg, st := oneFallback(testStart.Add(8 * time.Hour))
		env := newTestEnv(t, cfg, st)
		env.fake.script("usage", scripted{status: 200, body: usageOK})
		v, err := env.engine.RefreshQuota(env.ctx(), "fb")
		require.NoError(t, err)
		require.NotNil(t, v.Fetched)
		assert.True(t, *v.Fetched)
		assert.Equal(t, 1, env.fake.count("usage"))
	})
}

// Another process holding the account's quota-poll lock: a fresh cached
// snapshot is the answer (not fetched), a stale one is "in progress";
// either way no usage call is made.
func TestQuotaPollLockAcrossProcesses(t *testing.T) {
	tests := []struct {
		name    string
		checked time.Time
		fresh   bool
	}{
		{"fresh snapshot is served from the cache", testStart.Add(-time.Minute), true},
		{"stale snapshot: already in progress", testStart.Add(-time.Hour), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, st := withQuota(tc.checked, time.Time{})
			env := newTestEnv(t, cfg, st)
			other, err := NewStore(StoreOptions{Paths: env.paths})
			require.NoError(t, err)
			release, err := other.files.Acquire(env.ctx(), "opencode-fallback-quota-refresh-fb", quotaPollLockTTL, 0)
			require.NoError(t, err)
			defer release()
			v, err := env.engine.RefreshQuota(env.ctx(), "fb")
			if tc.fresh {
				require.NoError(t, err)
				require.NotNil(t, v.Fetched)
				assert.False(t, *v.Fetched)
			} else {
				assert.ErrorIs(t, err, ErrInProgress)
				assert.Contains(t, err.Error(), "Quota refresh is already in progress")
			}
			assert.Equal(t, 0, env.fake.count("usage"))
			release()
			env.fake.script("usage", scripted{status: 200, body: usageOK})
			v, err = env.engine.RefreshQuota(env.ctx(), "fb")
			require.NoError(t, err)
			assert.True(t, *v.Fetched, "the lock released, the poll happens")
			assert.Equal(t, 1, env.fake.count("usage"))
		})
	}
}

// Concurrent polls of one account inside a process share one usage call.
func TestQuotaPollOneInFlightPerAccount(t *testing.T) {
	cfg, st := oneFallback(testStart.Add(8 * time.Hour))
	env := newTestEnv(t, cfg, st)
	var calls atomic.Int32
	started, unblock := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(started)
			<-unblock
		}
		_, _ = w.Write([]byte(usageOK))
	}))
	t.Cleanup(srv.Close)
	env.engine.api.UsageURL = srv.URL
	const callers = 3
	var wg sync.WaitGroup
	errs := make([]error, callers)
	quotas := make([]*record.QuotaSnapshot, callers)
	poll := func(i int) {
		defer wg.Done()
		quotas[i], errs[i] = env.engine.fetchQuota(env.ctx(), "fb")
	}
	wg.Add(1)
	go poll(0)
	<-started
	for i := 1; i < callers; i++ {
		wg.Add(1)
		go poll(i)
	}
	require.Eventually(t, func() bool {
		env.engine.flightMu.Lock()
		defer env.engine.flightMu.Unlock()
		f := env.engine.flights["quota:fb"]
		return f != nil && f.joined == callers-1
	}, 10*time.Second, time.Millisecond, "the other callers join the running poll")
	close(unblock)
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		require.NotNil(t, quotas[i])
		assert.Equal(t, 60.0, quotas[i].FiveHour.RemainingPercent)
	}
	assert.EqualValues(t, 1, calls.Load(), "one usage call for all")
}
