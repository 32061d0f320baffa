package core

import (
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
)

// allocate is policy.AllocateBy over the sessions' assignments: it sums
// their input bytes by account and quota snapshot first.
func allocate(cands []policy.AllocCandidate, assignments map[string]*stickyAssignment, s policy.Settings, requestBytes int64, family, model string, now time.Time) (string, bool) {
	loads := map[policy.LoadKey]int64{}
	for _, a := range assignments {
		if a != nil {
			loads[policy.LoadKey{Account: a.AccountID, Checked: a.QuotaCheckedAt}] += a.InitialInputBytes
		}
	}
	return policy.AllocateBy(cands, loads, s, requestBytes, family, model, now)
}
