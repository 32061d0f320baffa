package policy

import (
	"math"
	"time"

	"github.com/acctpool/acctpool/core/record"
)

// AllocCandidate is one account a new sticky session may be assigned to.
type AllocCandidate struct {
	ID    string
	Order int
	Quota *record.QuotaSnapshot
	// Known is true when the quota has both standard windows.
	Known bool
}

// minAllocWeight keeps the score finite for accounts with a tiny weight.
const minAllocWeight = 1e-6

// minResetHours is the shortest time-to-reset the weight divides by (one
// minute), so a window about to reset does not get an infinite rate.
const minResetHours = 1.0 / 60

// stickyReserve is the share of a window the allocator never spends: the
// minimumRemaining threshold, raised to the killswitch threshold when the
// killswitch is on.
func stickyReserve(s Settings, id string) Thresholds {
	r := Thresholds{FiveHour: s.MinimumRemaining.FiveHour, SevenDay: s.MinimumRemaining.SevenDay}
	if s.Killswitch.Enabled {
		k := s.Killswitch.For(id)
		r.FiveHour = math.Max(r.FiveHour, k.FiveHour)
		r.SevenDay = math.Max(r.SevenDay, k.SevenDay)
		r.Scoped = math.Max(r.Scoped, k.Scoped)
	}
	return r
}

// StickyWeight is how fast an account can absorb new sessions: the
// smallest, over its 5h and 7d windows (and, for Fable-family requests, the
// matching scoped window), of the spendable percentage above the reserve
// per hour until that window resets. Unknown or stale quota weighs 0.
func StickyWeight(q *record.QuotaSnapshot, s Settings, id, family, model string, now time.Time) float64 {
	if !HasStandardWindows(q) || !QuotaAgeFresh(q, s.QuotaCheckInterval, model, now) {
		return 0
	}
	reserve := stickyReserve(s, id)
	rate := func(remaining, reserve float64, resetsAt string) float64 {
		spend := math.Max(0, remaining-reserve)
		if t, ok := FutureReset(resetsAt, now); ok {
			return spend / math.Max(t.Sub(now).Hours(), minResetHours)
		}
		return spend
	}
	w := math.Min(
		rate(q.FiveHour.RemainingPercent, reserve.FiveHour, q.FiveHour.ResetsAt),
		rate(q.SevenDay.RemainingPercent, reserve.SevenDay, q.SevenDay.ResetsAt))
	if family == "fable" {
		if sw := ScopedWindowFor(q, model); sw != nil && Finite(sw.RemainingPercent) {
			w = math.Min(w, rate(sw.RemainingPercent, reserve.Scoped, sw.ResetsAt))
		}
	}
	return w
}

// fableDead reports whether q has a fresh Fable scoped window at 0 %: Opus
// requests go there first, to spend quota Fable can no longer use.
func fableDead(q *record.QuotaSnapshot, interval time.Duration, now time.Time) bool {
	sw := ScopedWindowFor(q, "fable")
	if sw == nil || !Finite(sw.RemainingPercent) || sw.RemainingPercent > 0 {
		return false
	}
	return sw.CheckedAt > now.UnixMilli()-interval.Milliseconds()
}

// LoadKey names the sessions assigned to one account against one quota
// snapshot (its latest check).
type LoadKey struct {
	Account string
	Checked int64
}

// AllocateBy picks the account for a new sticky session with the weighted
// deficit rule (BEHAVIOUR.md §5.4): each account's score is the bytes
// already assigned to it since its current quota observation (loads, by
// account and snapshot), plus this request's, divided by its weight
// ([StickyWeight]); the lowest score wins, ties by order then id. It
// returns false when no candidate has weight and some quota is known; when
// no quota is known at all, the first candidate wins. core's allocate sums
// loads from the assignments; its stickyFile keeps them as it changes.
func AllocateBy(cands []AllocCandidate, loads map[LoadKey]int64, s Settings, requestBytes int64, family, model string, now time.Time) (string, bool) {
	if len(cands) == 0 {
		return "", false
	}
	anyKnown := false
	for _, c := range cands {
		if c.Known {
			anyKnown = true
			break
		}
	}
	if !anyKnown {
		best := cands[0]
		for _, c := range cands[1:] {
			if c.Order < best.Order || (c.Order == best.Order && c.ID < best.ID) {
				best = c
			}
		}
		return best.ID, true
	}
	pool := cands
	if family == "opus" {
		var dead []AllocCandidate
		for _, c := range cands {
			if fableDead(c.Quota, s.QuotaCheckInterval, now) {
				dead = append(dead, c)
			}
		}
		if len(dead) > 0 {
			pool = dead
		}
	}
	if requestBytes < 1 {
		requestBytes = 1
	}
	var (
		bestID    string
		bestOrder int
		bestScore = math.Inf(1)
	)
	for _, c := range pool {
		w := StickyWeight(c.Quota, s, c.ID, family, model, now)
		if w <= 0 {
			continue
		}
		pending := loads[LoadKey{c.ID, c.Quota.LatestCheck()}]
		score := float64(pending+requestBytes) / math.Max(w, minAllocWeight)
		if score < bestScore || (score == bestScore && (c.Order < bestOrder || (c.Order == bestOrder && c.ID < bestID))) {
			bestID, bestOrder, bestScore = c.ID, c.Order, score
		}
	}
	return bestID, bestID != ""
}
