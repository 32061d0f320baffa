package policy

import (
	"fmt"
	"time"

	"github.com/acctpool/acctpool/core/record"
)

// KillswitchDefaultRetry is the killswitch retry-after when no window
// reports a future reset.
const KillswitchDefaultRetry = 300 * time.Second

// killswitchResetSlack is added to the earliest reset: limits lift a little
// after the reset time the usage endpoint reports.
const killswitchResetSlack = 60 * time.Second

// killswitchPasses reports whether an account's quota passes the killswitch
// (BEHAVIOUR.md §5.5). The killswitch is a hard floor that stops an
// account before it hits its limit: with it off everything passes; a
// present 5h or 7d window below its threshold fails even when the other is
// missing; the model's scoped window fails at or below the scoped threshold
// (inclusive, so 0 blocks exhaustion); a missing window fails only under
// failClosedOnUnknownQuota. The thresholds are killswitch.accounts[id],
// else killswitch.main.
func killswitchPasses(q *record.QuotaSnapshot, s Settings, accountID, model string) bool {
	_, _, ok := KillswitchFailure(q, s, accountID, model, time.Time{})
	return ok
}

// KillswitchFailure returns why q fails the killswitch and when that ends,
// or ok.
func KillswitchFailure(q *record.QuotaSnapshot, s Settings, accountID, model string, now time.Time) (string, time.Time, bool) {
	if !s.Killswitch.Enabled {
		return "", time.Time{}, true
	}
	t := s.Killswitch.For(accountID)
	unknown := ""
	check := func(name string, w *record.QuotaWindow, threshold float64) (string, time.Time, bool) {
		if w == nil || !Finite(w.RemainingPercent) {
			if unknown == "" {
				unknown = name
			}
			return "", time.Time{}, true
		}
		if w.RemainingPercent < threshold {
			until, _ := FutureReset(w.ResetsAt, now)
			return fmt.Sprintf("killswitch: %s %s%% < %s%%", name, pct(w.RemainingPercent), pct(threshold)), until, false
		}
		return "", time.Time{}, true
	}
	var five, seven *record.QuotaWindow
	if q != nil {
		five, seven = q.FiveHour, q.SevenDay
	}
	if r, u, ok := check("5h", five, t.FiveHour); !ok {
		return r, u, false
	}
	if r, u, ok := check("7d", seven, t.SevenDay); !ok {
		return r, u, false
	}
	if sw := ScopedWindowFor(q, model); sw != nil && Finite(sw.RemainingPercent) && sw.RemainingPercent <= t.Scoped {
		until, _ := FutureReset(sw.ResetsAt, now)
		return fmt.Sprintf("killswitch: %s %s%% <= %s%%", sw.ModelName, pct(sw.RemainingPercent), pct(t.Scoped)), until, false
	}
	if unknown != "" && s.FailClosedOnUnknown {
		return "killswitch: no " + unknown + " window (quota unknown)", time.Time{}, false
	}
	return "", time.Time{}, true
}

// KillswitchScopedOnly reports whether q passes the killswitch on its
// standard windows but fails it on the model's scoped window, which turns
// the killswitch message into "<Model> weekly limit reached".
func KillswitchScopedOnly(q *record.QuotaSnapshot, s Settings, accountID, model string) bool {
	if !s.Killswitch.Enabled || model == "" {
		return false
	}
	if killswitchPasses(q, s, accountID, "") {
		return !killswitchPasses(q, s, accountID, model)
	}
	return false
}

// KillswitchRetryAfter is how long a host should wait when the killswitch
// (or sticky quota policy) leaves no account: the earliest future reset
// among the given snapshots' 5h and 7d windows (only the scoped windows
// matching scopedModel, when it is set), rounded up to whole seconds, plus
// 60 s; 300 s when no reset is known.
func KillswitchRetryAfter(quotas []*record.QuotaSnapshot, scopedModel string, now time.Time) time.Duration {
	var earliest time.Time
	consider := func(reset string) {
		if t, ok := FutureReset(reset, now); ok && (earliest.IsZero() || t.Before(earliest)) {
			earliest = t
		}
	}
	for _, q := range quotas {
		if q == nil {
			continue
		}
		if scopedModel != "" {
			if sw := ScopedWindowFor(q, scopedModel); sw != nil {
				consider(sw.ResetsAt)
			}
			continue
		}
		if q.FiveHour != nil {
			consider(q.FiveHour.ResetsAt)
		}
		if q.SevenDay != nil {
			consider(q.SevenDay.ResetsAt)
		}
	}
	if earliest.IsZero() {
		return KillswitchDefaultRetry
	}
	return CeilSeconds(earliest.Sub(now)) + killswitchResetSlack
}

// CeilSeconds rounds d up to whole seconds, at least one.
func CeilSeconds(d time.Duration) time.Duration {
	s := (d + time.Second - 1) / time.Second
	if s < 1 {
		s = 1
	}
	return s * time.Second
}

// RetryInText formats a wait as upstream's "<m>m <s>s".
func RetryInText(d time.Duration) string {
	secs := int64(CeilSeconds(d) / time.Second)
	return fmt.Sprintf("%dm %ds", secs/60, secs%60)
}
