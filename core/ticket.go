package core

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/secret"
)

// ticketCap bounds the route tickets an engine remembers; the oldest go
// first. A host reports a route within seconds, so a few thousand cover
// any number of requests in flight.
const ticketCap = 4096

// routeTicket is what the server remembers of a route it handed out, so
// that route/report does not have to trust what the host echoes back
// (BEHAVIOUR.md §5.1): the account, the credential it carried (to redact
// it and to tell a rejected main token from a replaced one), the request's
// model, size and session, the accounts already tried, whether a 401 was
// already answered with a refresh, and whether a sticky session lives on
// the route.
type routeTicket struct {
	accountID   string
	token       secret.Secret
	sessionID   string
	model       string
	promptBytes int64
	attempted   []string
	authRetried bool
	sticky      bool
}

// ticketBook is the engine's bounded set of route tickets: a ring of the
// latest ticketCap records and an index by ticket id. Ids are a random
// per-engine prefix and a sequence number, unique within the process.
type ticketBook struct {
	mu     sync.Mutex
	prefix string
	seq    uint64
	ring   []routeTicket
	ids    []string
	byID   map[string]int
}

// issued gives r a ticket and remembers it; nil passes through.
func (e *Engine) issued(r *Route) *Route {
	if r == nil {
		return nil
	}
	book := &e.router().tickets
	book.mu.Lock()
	if book.byID == nil {
		var b [6]byte
		_, _ = rand.Read(b[:]) // a zero prefix still gives unique ids
		book.prefix = hex.EncodeToString(b[:]) + "-"
		book.ring = make([]routeTicket, ticketCap)
		book.ids = make([]string, ticketCap)
		book.byID = make(map[string]int, ticketCap)
	}
	slot := int(book.seq % ticketCap)
	book.seq++
	var buf [32]byte
	id := string(strconv.AppendUint(append(buf[:0], book.prefix...), book.seq, 36))
	if old := book.ids[slot]; old != "" {
		delete(book.byID, old)
	}
	t := &book.ring[slot]
	*t = routeTicket{accountID: r.AccountID, token: r.Credential.Token, sessionID: r.SessionID, model: r.Model,
		promptBytes: r.PromptBytes, authRetried: r.AuthRetried, sticky: r.Sticky != nil}
	if len(r.Attempted) > 0 {
		t.attempted = append([]string(nil), r.Attempted...)
	}
	book.ids[slot] = id
	book.byID[id] = slot
	book.mu.Unlock()
	r.Ticket = id
	return r
}

// reportedRoute is the route a report answers: the server's own record
// when the ticket is known (ok), else the route as the host echoed it.
func (e *Engine) reportedRoute(r Route) (Route, *routeTicket) {
	if r.Ticket == "" {
		return r, nil
	}
	book := &e.router().tickets
	book.mu.Lock()
	slot, ok := book.byID[r.Ticket]
	var t *routeTicket
	if ok {
		c := book.ring[slot]
		t = &c
	}
	book.mu.Unlock()
	if t == nil {
		return r, nil
	}
	r.AccountID, r.Credential.Token = t.accountID, t.token
	r.SessionID, r.Model, r.PromptBytes = t.sessionID, t.model, t.promptBytes
	r.Attempted, r.AuthRetried = append([]string(nil), t.attempted...), t.authRetried
	r.Sticky = nil
	if t.sticky {
		r.Sticky = &StickyInfo{}
	}
	return r, t
}

// routeIsSticky reports whether a sticky session lives on the reported
// route: the ticket says so, or, for a route without a known ticket, the
// routing state assigns the route's session to its account. An echoed
// sticky field is never trusted.
func (e *Engine) routeIsSticky(snap *Snapshot, r Route, t *routeTicket) bool {
	if snap.Settings.Routing != policy.RoutingStickyBalanced || r.SessionID == "" {
		return false
	}
	if t != nil {
		return t.sticky
	}
	a, found, err := e.stickyLookup(context.Background(), sessionKey(r.SessionID))
	return err == nil && found && a.AccountID == r.AccountID
}
