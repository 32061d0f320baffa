package core

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReloginAlerts(t *testing.T) {
	dead := func(id string) AccountView {
		return AccountView{ID: id, Label: "L" + id, NeedsRelogin: true, LastRefreshError: &record.OpError{Message: "m", CheckedAt: 42}}
	}
	alive := func(id string) AccountView { return AccountView{ID: id, Label: "L" + id} }
	cases := []struct {
		name          string
		before, after []AccountView
		want          []string
	}{
		{"first look reports every dead account", nil, []AccountView{alive("a"), dead("b")}, []string{"b"}},
		{"entering needs-re-login", []AccountView{alive("a")}, []AccountView{dead("a")}, []string{"a"}},
		{"still dead is not news", []AccountView{dead("a")}, []AccountView{dead("a")}, nil},
		{"recovered", []AccountView{dead("a")}, []AccountView{alive("a")}, nil},
		{"dead again after recovering", []AccountView{alive("a")}, []AccountView{dead("a")}, []string{"a"}},
		{"new account already dead", []AccountView{alive("a")}, []AccountView{alive("a"), dead("c")}, []string{"c"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			entered, _ := reloginChanges(tc.before, tc.after)
			for _, a := range entered {
				got = append(got, a.AccountID)
				assert.Equal(t, policy.ReasonNeedsRelogin.String(), a.Reason)
				assert.Equal(t, int64(42), a.Since)
				assert.Equal(t, "acctpool login --replace "+a.AccountID, a.Fix)
				assert.Equal(t, "L"+a.AccountID, a.Label)
			}
			assert.Equal(t, tc.want, got)
		})
	}
	m, _ := reloginChanges(nil, []AccountView{{ID: MainAccountID, Main: true, NeedsRelogin: true}})
	require.Len(t, m, 1)
	assert.Contains(t, m[0].Fix, "log in to the host again")
}

func TestReloginRecovered(t *testing.T) {
	dead := func(id string) AccountView { return AccountView{ID: id, NeedsRelogin: true} }
	alive := func(id string) AccountView { return AccountView{ID: id} }
	cases := []struct {
		name          string
		before, after []AccountView
		want          []string
	}{
		{"first look recovers nothing", nil, []AccountView{alive("a")}, nil},
		{"leaving needs-re-login", []AccountView{dead("a"), dead("b")}, []AccountView{alive("a"), dead("b")}, []string{"a"}},
		{"still alive is not news", []AccountView{alive("a")}, []AccountView{alive("a")}, nil},
		{"removed is not recovered", []AccountView{dead("a")}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, left := reloginChanges(tc.before, tc.after)
			assert.Equal(t, tc.want, left)
		})
	}
}

// webhookSink records the alerts a webhook receives and answers with the
// scripted statuses (the last repeats).
type webhookSink struct {
	mu       sync.Mutex
	statuses []int
	bodies   []string
	got      chan struct{}
	srv      *httptest.Server
}

func newWebhookSink(t *testing.T, statuses ...int) *webhookSink {
	s := &webhookSink{statuses: statuses, got: make(chan struct{}, 16)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		status := s.statuses[0]
		if len(s.statuses) > 1 {
			s.statuses = s.statuses[1:]
		}
		s.mu.Unlock()
		w.WriteHeader(status)
		s.got <- struct{}{}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *webhookSink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func TestAlertWatch_invalidGrantAlertsOnceWithWebhook(t *testing.T) {
	sink := newWebhookSink(t, 503, 200)
	cfg := `{"version":1,"alerts":{"webhook":"` + sink.srv.URL + `/hook"},"accounts":[{"id":"fb","label":"work","type":"oauth","addedAt":1}]}`
	_, st := oneFallback(testStart.Add(time.Minute))
	env := newTestEnv(t, cfg, st)
	var logs strings.Builder
	var logMu sync.Mutex
	watch := NewAlertWatch(env.engine, AlertWatchOptions{Logger: newTestLogger(&logs, &logMu)})

	assert.Empty(t, watch.Check(env.ctx()), "nothing is dead yet")
	env.fake.script("token", scripted{status: 400, body: `{"error":"invalid_grant"}`})
	_, err := env.engine.RefreshDue(env.ctx())
	require.NoError(t, err)

	alerts := watch.Check(env.ctx())
	require.Len(t, alerts, 1)
	assert.Equal(t, Alert{AccountID: "fb", Label: "work", Reason: policy.ReasonNeedsRelogin.String(), Since: ms(testStart), Fix: "acctpool login --replace fb"}, alerts[0])
	watch.Wait()
	bodies := sink.received()
	require.Len(t, bodies, 2, "a 503 is retried once, then the 200 ends it")
	assert.JSONEq(t, `{"event":"accounts/alert","accountId":"fb","label":"work","reason":"needs re-login","since":`+itoa(ms(testStart))+`,"fix":"acctpool login --replace fb"}`, bodies[1])
	logMu.Lock()
	assert.Equal(t, 1, strings.Count(logs.String(), "account needs re-login"))
	assert.Contains(t, logs.String(), "label=work")
	assert.Contains(t, logs.String(), `fix="acctpool login --replace fb"`)
	logMu.Unlock()

	assert.Empty(t, watch.Check(env.ctx()), "an account alerts once per entry into needs-re-login")
	watch.Wait()
	assert.Len(t, sink.received(), 2)
	for _, b := range sink.received() {
		assert.NotContains(t, b, "PLANT", "no token reaches the webhook")
	}
}

func TestAlertWatch_webhookRetryIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		attempts int
	}{
		{"server errors are retried three times at most", 500, 3},
		{"a client error is not retried", 404, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newWebhookSink(t, tc.status)
			clock := NewManualClock(testStart)
			err := postAlert(t.Context(), http.DefaultClient, clock, sink.srv.URL, Alert{AccountID: "a", Reason: policy.ReasonNeedsRelogin.String(), Fix: "f"})
			require.Error(t, err)
			assert.NotContains(t, err.Error(), sink.srv.URL, "the URL may hold a secret")
			assert.Len(t, sink.received(), tc.attempts)
			if tc.attempts == 3 {
				assert.Equal(t, testStart.Add(3*time.Second), clock.Now(), "1 s then 2 s between attempts")
			}
		})
	}
}

func TestAlertWatch_noWebhookWithoutAURL(t *testing.T) {
	cfg := `{"version":1,"alerts":{"webhook":"not a url"},"accounts":[{"id":"fb","type":"oauth","addedAt":1}]}`
	st := `{"version":1,"accounts":{"fb":{"refresh":"r","lastRefreshError":{"message":"invalid_grant","checkedAt":1,"nextRetryAt":` +
		itoa(ms(testStart.Add(time.Hour))) + `,"status":400,"permanent":true}}}}`
	env := newTestEnv(t, cfg, st)
	watch := NewAlertWatch(env.engine, AlertWatchOptions{HTTP: doerFunc(func(*http.Request) (*http.Response, error) {
		t.Fatal("no webhook call expected")
		return nil, nil
	})})
	alerts := watch.Check(env.ctx())
	require.Len(t, alerts, 1, "already dead at the first look")
	watch.Wait()
	b, err := json.Marshal(alerts[0])
	require.NoError(t, err)
	assert.JSONEq(t, `{"accountId":"fb","reason":"needs re-login","since":1,"fix":"acctpool login --replace fb"}`, string(b))
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// lockedWriter serialises writes of concurrent loggers into one builder.
type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newTestLogger(b *strings.Builder, mu *sync.Mutex) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}
