package rpc

import (
	"context"
	"slices"
	"sync"

	"github.com/acctpool/acctpool/core"
)

// Notifier collects engine events until they can be sent to the host.
// Pass its Event method as core.Options.OnEvent and the Notifier itself as
// Options.Notifier: the engine is built before the server, so something
// must hold events in between.
//
// # Notes
//
// Event never blocks. Events are coalesced: the ids of accounts/changed and
// quota/changed accumulate into one set each, and only the newest main
// credentials are kept. Nothing is sent before the host's `initialized`
// notification; what gathered before then is sent right after it, so a
// rotated main token is never lost. The zero value is ready to use.
type Notifier struct {
	mu       sync.Mutex
	accounts map[string]struct{}
	quota    map[string]struct{}
	acctDue  bool
	quotaDue bool
	main     *core.MainCredentials
	wake     chan struct{}

	// Alerts, when set before notifications start, is asked which accounts
	// have newly entered needs-re-login: once when notifications start and
	// after every batch that carried accounts/changed. Each answer is sent
	// as accounts/alert (core.AlertWatch.Check fits).
	Alerts func(ctx context.Context) []core.Alert
}

// methodAlert is the notification of a core.Alert.
const methodAlert = "accounts/alert"

// Event records one engine event; it implements the core.Options.OnEvent
// callback.
func (n *Notifier) Event(ev core.Event) {
	n.mu.Lock()
	switch ev.Kind {
	case core.EventAccountsChanged:
		n.acctDue = true
		n.accounts = addIDs(n.accounts, ev.Accounts)
	case core.EventQuotaChanged:
		n.quotaDue = true
		n.quota = addIDs(n.quota, ev.Accounts)
	case core.EventMainRefreshed:
		if ev.Main != nil {
			m := *ev.Main
			n.main = &m
		}
	}
	wake := n.wakeLocked()
	n.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

func (n *Notifier) wakeLocked() chan struct{} {
	if n.wake == nil {
		n.wake = make(chan struct{}, 1)
	}
	return n.wake
}

// note is one notification ready to send.
type note struct {
	method string
	params any
}

type accountsParams struct {
	Accounts []string `json:"accounts"`
}

// take empties the queue, main credentials first.
func (n *Notifier) take() []note {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []note
	if n.main != nil {
		out = append(out, note{string(core.EventMainRefreshed), n.main})
		n.main = nil
	}
	if n.acctDue {
		out = append(out, note{string(core.EventAccountsChanged), accountsParams{sortedIDs(n.accounts)}})
		n.accounts, n.acctDue = nil, false
	}
	if n.quotaDue {
		out = append(out, note{string(core.EventQuotaChanged), accountsParams{sortedIDs(n.quota)}})
		n.quota, n.quotaDue = nil, false
	}
	return out
}

// run sends queued notifications until ctx ends, starting with whatever
// gathered before it was called.
func (n *Notifier) run(ctx context.Context, send func(method string, params any) error) {
	n.mu.Lock()
	wake := n.wakeLocked()
	n.mu.Unlock()
	first := true
	for {
		changed := first
		for _, m := range n.take() {
			if send(m.method, m.params) != nil {
				return
			}
			changed = changed || m.method == string(core.EventAccountsChanged)
		}
		first = false
		if changed && n.Alerts != nil {
			for _, a := range n.Alerts(ctx) {
				if send(methodAlert, a) != nil {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
	}
}

func addIDs(set map[string]struct{}, ids []string) map[string]struct{} {
	if set == nil {
		set = map[string]struct{}{}
	}
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return set
}

func sortedIDs(set map[string]struct{}) []string {
	ids := make([]string, 0, len(set))
	for id := range set {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
