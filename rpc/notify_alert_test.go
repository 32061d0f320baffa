package rpc

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/acctpool/acctpool/core"
)

func TestNotifier_alerts(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	queue := [][]core.Alert{
		{{AccountID: "a", Label: "work", Reason: "needs re-login", Since: 5, Fix: "acctpool login --replace a"}},
		{{AccountID: "b", Reason: "needs re-login", Fix: "acctpool login --replace b"}},
	}
	notes := &Notifier{Alerts: func(context.Context) []core.Alert {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if len(queue) == 0 {
			return nil
		}
		next := queue[0]
		queue = queue[1:]
		return next
	}}
	c := startClient(t, FramingLSP, harnessOpts{mutate: func(o *Options) {
		o.Notifier = notes
		o.ManualClock = core.NewManualClock(time.UnixMilli(1e12))
	}})
	c.initialize()
	c.notify("initialized", nil)
	first := c.waitFor(func(m msg) bool { return m.Method == "accounts/alert" })
	assert.JSONEq(t, `{"accountId":"a","label":"work","reason":"needs re-login","since":5,"fix":"acctpool login --replace a"}`, string(first.Params),
		"accounts already dead are announced when notifications start")

	notes.Event(core.Event{Kind: core.EventQuotaChanged, Accounts: []string{"q"}})
	c.waitFor(func(m msg) bool { return m.Method == "quota/changed" })
	mu.Lock()
	assert.Equal(t, 1, calls, "quota changes do not ask for alerts")
	mu.Unlock()

	notes.Event(core.Event{Kind: core.EventAccountsChanged, Accounts: []string{"b"}})
	second := c.waitFor(func(m msg) bool { return m.Method == "accounts/alert" })
	assert.JSONEq(t, `{"accountId":"b","reason":"needs re-login","fix":"acctpool login --replace b"}`, string(second.Params))
}
