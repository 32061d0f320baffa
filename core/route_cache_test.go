package core

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSelect_seesWrites: the routing cache sees this process's writes at
// once and another process's writes once externalRecheck has passed on
// the wall clock, never later.
func TestSelect_seesWrites(t *testing.T) {
	cfg, st := routeFiles(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "a", quota: fq(80, 80)}, fb{id: "b", quota: fq(80, 80)})
	env := newTestEnv(t, cfg, st)
	var mu sync.Mutex
	wall := testStart
	store, err := NewStore(StoreOptions{Paths: env.paths, WallClock: func() time.Time { mu.Lock(); defer mu.Unlock(); return wall }})
	require.NoError(t, err)
	env.engine, err = New(Options{Store: store, Clock: env.clock, Endpoints: Endpoints{Token: env.fake.srv.URL + "/v1/oauth/token", Usage: env.fake.srv.URL + "/api/oauth/usage", Profile: env.fake.srv.URL + "/api/oauth/profile"}})
	require.NoError(t, err)
	env.engine.setMainCredentials(MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: epochMs(testStart.Add(8 * time.Hour))})

	selected := func() string {
		r, err := env.engine.Select(env.ctx(), SelectRequest{})
		require.NoError(t, err)
		return r.AccountID
	}
	require.Equal(t, "a", selected())

	// This process disables "a": seen at once.
	off := false
	_, err = env.engine.UpdateAccount(env.ctx(), AccountPatch{ID: "a", Enabled: &off})
	require.NoError(t, err)
	assert.Equal(t, "b", selected())

	// Another process re-enables "a" behind our back.
	cfgNow, _ := routeFiles(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "a", quota: fq(80, 80)}, fb{id: "b", quota: fq(80, 80)})
	require.NoError(t, os.WriteFile(env.paths.Config, []byte(cfgNow), 0o600))
	mu.Lock()
	wall = wall.Add(externalRecheck - time.Millisecond)
	mu.Unlock()
	assert.Equal(t, "b", selected(), "within the recheck window the cached version serves")
	mu.Lock()
	wall = wall.Add(2 * time.Millisecond)
	mu.Unlock()
	assert.Equal(t, "a", selected(), "after the window the other process's write is seen")
}
