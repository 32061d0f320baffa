package rpc

import (
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
)

// blockingDoer holds every HTTP request until release is closed, and
// says when one arrived.
type blockingDoer struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func (d *blockingDoer) Do(*http.Request) (*http.Response, error) {
	d.once.Do(func() { close(d.arrived) })
	<-d.release
	return nil, errors.New("no network in this fixture")
}

// startInlineFixture starts an initialized server over an engine whose
// wall clock stands still (so the files' recheck window never passes on
// its own) with main set up as in startMainFixture; doer serves HTTP.
func startInlineFixture(t *testing.T, doer core.Doer) (*pipeClient, *Server) {
	wall := time.Now()
	c := startClient(t, FramingLSP, harnessOpts{mutate: func(o *Options) {
		dir := t.TempDir()
		store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{
			Config: filepath.Join(dir, "anthropic-auth.json"),
			State:  filepath.Join(dir, "anthropic-auth-state.json"),
		}, WallClock: func() time.Time { return wall }})
		require.NoError(t, err)
		o.Engine, err = core.New(core.Options{Store: store, HTTP: doer})
		require.NoError(t, err)
	}, table: func(map[string]method) {}})
	c.initialize()
	now := time.Now()
	m := c.call("accounts/setMain", map[string]any{"access": "inline-access", "refresh": "inline-refresh", "expires": now.Add(24 * time.Hour).UnixMilli()})
	require.Nil(t, m.Error)
	m = c.call("route/report", map[string]any{
		"route":  map[string]any{"accountId": "main", "kind": "main", "credential": map[string]any{"type": "bearer", "token": "x"}},
		"status": 200, "replayable": true,
		"headers": map[string]string{
			"anthropic-ratelimit-unified-5h-utilization": "0.4", "anthropic-ratelimit-unified-7d-utilization": "0.1",
			"anthropic-ratelimit-unified-5h-reset": strconv.FormatInt(now.Add(3*time.Hour).Unix(), 10),
			"anthropic-ratelimit-unified-7d-reset": strconv.FormatInt(now.Add(72*time.Hour).Unix(), 10),
		},
	})
	require.Nil(t, m.Error)
	return c, c.srv
}

type lanes struct{ inline, async int64 }

func lanesOf(s *Server) lanes { return lanes{s.counts.inline.Load(), s.counts.async.Load()} }

// TestServer_selectLane: route/select is answered on the read goroutine
// when the engine can select from memory, and on the async lane when a
// refresh is due; the answers have the same shape either way.
func TestServer_selectLane(t *testing.T) {
	c, srv := startInlineFixture(t, &refusingDoer{})
	params := map[string]any{"sessionId": "s", "model": "m", "promptBytes": 100}

	before := lanesOf(srv)
	m := c.call("route/select", params)
	require.Nil(t, m.Error)
	var r struct {
		AccountID string `json:"accountId"`
		Ticket    string `json:"ticket"`
	}
	require.NoError(t, json.Unmarshal(m.Result, &r))
	assert.Equal(t, "main", r.AccountID)
	assert.NotEmpty(t, r.Ticket)
	assert.Equal(t, lanes{before.inline + 1, before.async}, lanesOf(srv), "a selection from memory is answered inline")

	// A bad request is answered inline too, with the usual error.
	before = lanesOf(srv)
	requireError(t, c.call("route/select", map[string]any{"bogus": 1}), -32602, "bogus")
	assert.Equal(t, lanes{before.inline + 1, before.async}, lanesOf(srv))

	// main's token has expired: the refresh is due, so the call goes to
	// the async lane (where the refusing doer fails the refresh).
	m = c.call("accounts/setMain", map[string]any{"access": "old-access", "refresh": "old-refresh", "expires": time.Now().Add(-time.Hour).UnixMilli()})
	require.Nil(t, m.Error)
	before = lanesOf(srv)
	m = c.call("route/select", params)
	require.NotNil(t, m.Error, "the refresh cannot succeed in this fixture")
	assert.Equal(t, lanes{before.inline, before.async + 1}, lanesOf(srv), "a selection that must refresh is handed off")
}

// TestServer_selectAsyncCancels: a route/select that went to the async
// lane (its refresh waits on the network) can be cancelled like any async
// request, and the read goroutine keeps answering meanwhile.
func TestServer_selectAsyncCancels(t *testing.T) {
	doer := &blockingDoer{arrived: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(func() { close(doer.release) })
	c, srv := startInlineFixture(t, doer)
	m := c.call("accounts/setMain", map[string]any{"access": "old-access", "refresh": "old-refresh", "expires": time.Now().Add(-time.Hour).UnixMilli()})
	require.Nil(t, m.Error)
	before := lanesOf(srv)
	id := c.request("route/select", map[string]any{"sessionId": "s"})
	<-doer.arrived
	c.alive()
	c.notify("$/cancelRequest", map[string]any{"id": id})
	requireError(t, c.response(id), -32800, "cancel")
	assert.Equal(t, before.async+1, lanesOf(srv).async)
}

// TestServer_reportLane: a served route/report is recorded from memory
// and answered on the read goroutine; a 429 is classified and may poll or
// select again, so it goes to the async lane.
func TestServer_reportLane(t *testing.T) {
	doer := &refusingDoer{}
	c, srv := startInlineFixture(t, doer)
	sel := c.call("route/select", map[string]any{})
	require.Nil(t, sel.Error)
	var r struct {
		AccountID string `json:"accountId"`
		Ticket    string `json:"ticket"`
	}
	require.NoError(t, json.Unmarshal(sel.Result, &r))
	require.Equal(t, "main", r.AccountID)
	route := map[string]any{"accountId": "main", "ticket": r.Ticket}
	headers := map[string]string{"anthropic-ratelimit-unified-5h-utilization": "0.5", "anthropic-ratelimit-unified-7d-utilization": "0.2"}

	calls := doer.calls.Load()
	before := lanesOf(srv)
	m := c.call("route/report", map[string]any{"route": route, "status": 200, "replayable": true, "headers": headers})
	require.Nil(t, m.Error)
	var res struct {
		Action string `json:"action"`
		Reason string `json:"reason"`
	}
	require.NoError(t, json.Unmarshal(m.Result, &res))
	assert.Equal(t, "return", res.Action)
	assert.Equal(t, "success", res.Reason)
	assert.Equal(t, lanes{before.inline + 1, before.async}, lanesOf(srv), "a served report is answered inline")
	assert.Equal(t, calls, doer.calls.Load(), "a served report makes no request")

	// A bad request is answered inline with the usual error.
	before = lanesOf(srv)
	requireError(t, c.call("route/report", map[string]any{"route": route}), -32602, "status")
	assert.Equal(t, lanes{before.inline + 1, before.async}, lanesOf(srv))

	before = lanesOf(srv)
	m = c.call("route/report", map[string]any{"route": route, "status": 429, "replayable": true, "headers": headers})
	assert.True(t, m.Error != nil || m.Result != nil, "the 429 is answered")
	assert.Equal(t, lanes{before.inline, before.async + 1}, lanesOf(srv), "a 429 is handed off")
}
