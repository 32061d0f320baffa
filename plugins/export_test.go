package plugins

import "time"

// setNow replaces the clock of h's breakers (tests only).
func setNow(h *Host, now func() time.Time) {
	h.now = now
	if c := h.cur.Load(); c != nil {
		for _, e := range c.entries {
			if e.p != nil {
				e.p.mu.Lock()
				e.p.now = now
				e.p.mu.Unlock()
			}
		}
	}
}

// setCallTimeout replaces the per-call deadline of every plugin loaded in
// h's current chain (tests only, and only while no call is in flight: the
// field is read without a lock). It is the tests' injected deadline: a
// test that is not about deadlines gives its calls one no machine is slow
// enough to miss, and a deadline test shortens it just for the call that
// spins.
func setCallTimeout(h *Host, d time.Duration) {
	if c := h.cur.Load(); c != nil {
		for _, e := range c.entries {
			if e.p != nil {
				e.p.limits.CallTimeout = d
			}
		}
	}
}
