package chaos

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
)

// tokenEndpoint is a fake OAuth token endpoint that behaves as
// Anthropic's does for refresh tokens: each works once, and a reused one
// is answered 400 invalid_grant. Each server incarnation posts to a path
// of its own (/token/<incarnation>), so the endpoint knows who consumed
// every token and who posted a reused one; that tells a race (the first
// consumer was alive: two live holders used one token) from the kill
// window (the first consumer was killed after the answer and before its
// commit).
type tokenEndpoint struct {
	mu         sync.Mutex
	calls      int
	issued     int
	valid      map[string]string // account → its one working refresh token
	accountOf  map[string]string // refresh token → account
	consumedBy map[string]string // refresh token → incarnation that consumed it
	successor  map[string]string // refresh token → the one issued for it
	posted     map[string]bool   // refresh tokens ever posted
	killed     map[string]string // incarnation → how the run killed it: random, holder, journal
	pids       map[string]int    // incarnation → pid
	reuses     []reuse
	rotations  map[string][]rotation // account → its successful rotations, in order
	// answeredBy is when an incarnation last got a new pair for an
	// account (incarnation + "/" + account).
	answeredBy map[string]time.Time
	// holderKill, when armed, kills the next incarnation that posts a
	// valid refresh token, before the token is consumed: a lock holder
	// dies in its token call. onHolderKill hears of it (outside the lock).
	holderKill   int
	onHolderKill func(inc, account string, at time.Time)
	// journalKill, when armed, answers the next valid post and has the
	// caller killed after its journal is on disk and before its commit:
	// holdCommits is called before the answer (it blocks commits and
	// returns what lifts the block), then onJournalKill (in its own
	// goroutine) waits for the caller's save to block, kills it and lifts
	// the block.
	journalKill   int
	holdCommits   func() (lift func())
	onJournalKill func(inc string, pid int, account string, lift func())
}

// rotation is one successful rotation: when, and by which incarnation.
type rotation struct {
	at  time.Time
	inc string
}

// reuse is one invalid_grant answer.
type reuse struct {
	account, token, consumer, poster string
	// consumerKilled is how the first consumer was killed, if it was, at
	// the time of the post and while the pair it got was not in use yet
	// (the kill window); "" otherwise (a race).
	consumerKilled string
}

func newTokenEndpoint() *tokenEndpoint {
	return &tokenEndpoint{valid: map[string]string{}, accountOf: map[string]string{}, consumedBy: map[string]string{},
		successor: map[string]string{}, posted: map[string]bool{}, killed: map[string]string{}, pids: map[string]int{}, rotations: map[string][]rotation{}, answeredBy: map[string]time.Time{}}
}

// seed gives account its first refresh token.
func (f *tokenEndpoint) seed(account string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := "rt-" + account + "-seed"
	f.valid[account], f.accountOf[tok] = tok, account
	return tok
}

func (f *tokenEndpoint) register(inc string, pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pids[inc] = pid
}

func (f *tokenEndpoint) markKilled(inc, how string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed[inc] = how
}

func (f *tokenEndpoint) armHolderKill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holderKill++
}

func (f *tokenEndpoint) armJournalKill() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.journalKill++
}

func (f *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/usage":
		_, _ = io.WriteString(w, `{"five_hour":{"utilization":20,"resets_at":"2099-01-01T00:00:00Z"},"seven_day":{"utilization":30,"resets_at":"2099-01-05T00:00:00Z"}}`)
		return
	case !strings.HasPrefix(r.URL.Path, "/token/"):
		http.NotFound(w, r)
		return
	}
	inc := strings.TrimPrefix(r.URL.Path, "/token/")
	var body struct {
		GrantType string `json:"grant_type"`
		Refresh   string `json:"refresh_token"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.GrantType != "refresh_token" {
		http.Error(w, `{"error":"invalid_request"}`, 400)
		return
	}
	f.mu.Lock()
	f.calls++
	account := f.accountOf[body.Refresh]
	if account != "" && f.valid[account] == body.Refresh && f.holderKill > 0 {
		// The holder dies in its token call; the token is not consumed.
		f.holderKill--
		f.killed[inc] = "holder"
		pid, hook := f.pids[inc], f.onHolderKill
		f.mu.Unlock()
		at := time.Now()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		if hook != nil {
			hook(inc, account, at)
		}
		http.Error(w, "killed", 503)
		return
	}
	var lift func()
	if account != "" && f.valid[account] == body.Refresh && f.journalKill > 0 {
		f.journalKill--
		f.killed[inc] = "journal"
		pid := f.pids[inc]
		f.mu.Unlock()
		lift = f.holdCommits()
		defer func() { go f.onJournalKill(inc, pid, account, lift) }()
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	f.posted[body.Refresh] = true
	if account == "" || f.valid[account] != body.Refresh {
		consumer := f.consumedBy[body.Refresh]
		how := f.killed[consumer]
		if f.posted[f.successor[body.Refresh]] {
			// The pair that replaced this token is in use: whoever posts
			// the old one read a stale store, killed consumer or not.
			how = ""
		}
		f.reuses = append(f.reuses, reuse{account: account, token: body.Refresh, consumer: consumer, poster: inc, consumerKilled: how})
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"Refresh token already used"}`)
		return
	}
	f.issued++
	next := fmt.Sprintf("rt-%s-%d", account, f.issued)
	f.consumedBy[body.Refresh] = inc
	f.successor[body.Refresh] = next
	f.valid[account], f.accountOf[next] = next, account
	now := time.Now()
	f.rotations[account] = append(f.rotations[account], rotation{at: now, inc: inc})
	f.answeredBy[inc+"/"+account] = now
	// Most pairs last 8 hours (not due); some 1 hour, inside the default
	// 4-hour refresh window, so passes and requests refresh them again.
	expires := 28800
	if f.issued%3 == 0 {
		expires = 3600
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%s-%d", account, f.issued), "refresh_token": next, "expires_in": expires})
}

// firstRotationAfter is the first successful rotation of account at or
// after t by a process of another slot than notSlot (zero when none).
func (f *tokenEndpoint) firstRotationAfter(account string, t time.Time, notSlot string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rotations[account] {
		if !r.at.Before(t) && slotOf(r.inc) != notSlot {
			return r.at
		}
	}
	return time.Time{}
}

// slotOf is the slot of an incarnation: "2" for "s2.3".
func slotOf(inc string) string {
	s, _, _ := strings.Cut(strings.TrimPrefix(inc, "s"), ".")
	return s
}
