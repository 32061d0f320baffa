package core

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

// rotatingEndpoint is a fake token endpoint with Anthropic's single-use
// rule: each refresh token is accepted once and rotated; a reused one gets
// 400 invalid_grant. A token counts as consumed only when the answer was
// written, so a client killed before the answer loses nothing. With hold
// set, each request signals arrived and waits for a value on answer (or the
// client going away) before it answers.
type rotatingEndpoint struct {
	srv     *httptest.Server
	hold    atomic.Bool
	arrived chan struct{}
	answer  chan struct{}

	mu         sync.Mutex
	issued     map[string]string // refresh token → account label it belongs to
	consumed   map[string]bool
	latest     map[string]string // account → last refresh token issued
	rejected   int               // invalid_grant answers
	rejectedOf map[string]int    // account → invalid_grant answers
	answeredTo map[string]string // refresh token issued → X-Test-Pid of the client
	answeredAt map[string]time.Time
	calls      int
	n          int
}

func newRotatingEndpoint(t *testing.T, hold bool) *rotatingEndpoint {
	f := &rotatingEndpoint{arrived: make(chan struct{}, 64), answer: make(chan struct{}, 64),
		issued: map[string]string{}, rejectedOf: map[string]int{}, answeredTo: map[string]string{}, answeredAt: map[string]time.Time{}, consumed: map[string]bool{}, latest: map[string]string{}}
	f.hold.Store(hold)
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() { close(f.answer) }) // first: unblock held requests
	return f
}

// plant registers the starting refresh token of an account.
func (f *rotatingEndpoint) plant(account, refresh string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.issued[refresh] = account
	f.latest[account] = refresh
}

func (f *rotatingEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var body struct {
		Refresh string `json:"refresh_token"`
	}
	_ = json.Unmarshal(raw, &body)
	if f.hold.Load() {
		f.arrived <- struct{}{}
		select {
		case <-f.answer:
		case <-r.Context().Done():
			return // the client is gone: nothing consumed
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	account, known := f.issued[body.Refresh]
	if !known || f.consumed[body.Refresh] {
		f.rejected++
		f.rejectedOf[account]++
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}`)
		return
	}
	f.n++
	next := fmt.Sprintf("sk-ant-ort01-%s-R%d", account, f.n)
	f.consumed[body.Refresh] = true
	f.issued[next] = account
	f.latest[account] = next
	f.answeredTo[next] = r.Header.Get("X-Test-Pid")
	_, _ = fmt.Fprintf(w, `{"access_token":"sk-ant-oat01-%s-A%d","refresh_token":%q,"expires_in":28800}`, account, f.n, next)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	f.answeredAt[next] = time.Now()
}

func (f *rotatingEndpoint) latestOf(account string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latest[account]
}

func (f *rotatingEndpoint) isConsumed(refresh string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.consumed[refresh]
}

func (f *rotatingEndpoint) counts() (calls, rejected int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.rejected
}
