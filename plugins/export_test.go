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
