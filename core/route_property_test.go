package core

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/require"
)

// TestSelect_neverRoutesToUnusable is a property test over randomized
// account pools (fixed seed): whatever the mode, Select never returns a
// fallback that is disabled, needs a re-login, fails the killswitch or is
// below minimumRemaining, nor a main that needs a re-login or fails the
// killswitch, nor (for a new sticky session) a main below minimumRemaining.
func TestSelect_neverRoutesToUnusable(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261128, 5))
	runs := 150
	if testing.Short() {
		runs = 30
	}
	yes := true
	pick := func(xs ...float64) float64 { return xs[rng.IntN(len(xs))] }
	quota := func() *record.QuotaSnapshot {
		if rng.IntN(6) == 0 {
			return nil
		}
		var sc []record.ScopedWindow
		if rng.IntN(2) == 0 {
			sc = []record.ScopedWindow{fableWin(pick(0, 5, 50))}
		}
		return fq(pick(0, 3, 8, 15, 50, 100), pick(0, 4, 12, 30, 90), sc...)
	}
	modes := []string{"main-first", "fallback-first", "sticky-balanced"}
	models := []string{"", "claude-fable-5", "claude-opus-4-7"}
	for run := 0; run < runs; run++ {
		mode := modes[rng.IntN(len(modes))]
		minFive, minSeven := pick(0, 10), pick(0, 20)
		ks := rng.IntN(2) == 0
		failClosed := rng.IntN(3) != 0
		settings := fmt.Sprintf(`"routing":{"mode":%q},"quota":{"enabled":%t,"failClosedOnUnknownQuota":%t,"minimumRemaining":{"5h":%g,"seven_day":%g}},"killswitch":{"enabled":%t}`,
			mode, rng.IntN(4) != 0, failClosed, minFive, minSeven, ks)
		main := &record.MainState{Quota: quota()}
		if rng.IntN(8) == 0 {
			main.LastRefreshError = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("main-refresh").Fingerprint()}
		}
		n := 1 + rng.IntN(5)
		fbs := make([]fb, n)
		for i := range fbs {
			f := fb{id: fmt.Sprintf("fb-%d", i), quota: quota(), disabled: rng.IntN(5) == 0}
			switch rng.IntN(6) {
			case 0:
				f.refErr = &record.OpError{Message: "invalid_grant", Status: 400, Permanent: &yes, RefreshTokenFingerprint: secret.Secret("refresh-" + f.id).Fingerprint()}
			case 1:
				f.expires = -time.Second
				f.refErr = &record.OpError{Message: "429", Status: 429, NextRetryAt: epochMs(testStart.Add(time.Hour)), AccountIdentity: f.id}
			}
			fbs[i] = f
		}
		name := fmt.Sprintf("run %d %s", run, mode)
		env := routeEnv(t, settings, main, fbs...)
		snap, err := env.engine.store.Load(env.ctx())
		require.NoError(t, err, name)
		s := snap.Settings
		for try := 0; try < 3; try++ {
			req := SelectRequest{Model: models[rng.IntN(len(models))], PromptBytes: int64(rng.IntN(1 << 20))}
			if mode == "sticky-balanced" {
				req.SessionID = fmt.Sprintf("s-%d-%d", run, try)
			}
			r, err := env.engine.Select(env.ctx(), req)
			if err != nil {
				nr := noRoute(t, err)
				require.NotEmpty(t, nr.Message, name)
				require.NotEmpty(t, nr.Accounts, name)
				continue
			}
			if r.AccountID == MainAccountID {
				require.False(t, policy.NeedsRelogin(snap.Main.LastRefreshError, mainIdentity(snap), secret.Secret("main-refresh").Fingerprint()), "%s: main needs re-login", name)
				require.False(t, oracleKilled(snap.Main.Quota, ks, failClosed, req.Model), "%s: main killswitched", name)
				if r.Sticky != nil && r.Sticky.Created {
					require.False(t, oracleBelow(snap.Main.Quota, s.QuotaEnabled, failClosed, minFive, minSeven), "%s: new sticky session on main below threshold", name)
				}
				continue
			}
			a, ok := snap.Account(r.AccountID)
			require.True(t, ok, name)
			require.True(t, a.IsEnabled(), "%s: %s disabled", name, a.ID)
			require.False(t, a.State.LastRefreshError.IsPermanent(), "%s: %s needs re-login", name, a.ID)
			require.False(t, oracleKilled(a.State.Quota, ks, failClosed, req.Model), "%s: %s killswitched", name, a.ID)
			require.False(t, oracleBelow(a.State.Quota, s.QuotaEnabled, failClosed, minFive, minSeven), "%s: %s below threshold", name, a.ID)
			require.False(t, policy.ModelScopeExhausted(a.State.Quota, req.Model), "%s: %s model scope exhausted", name, a.ID)
		}
	}
}

// oracleBelow restates the minimumRemaining rule independently of the code
// under test: with quota checks on, a window under its minimum, or a
// missing window under failClosedOnUnknownQuota, is below threshold.
func oracleBelow(q *record.QuotaSnapshot, enabled, failClosed bool, five, seven float64) bool {
	if !enabled {
		return false
	}
	if q == nil || q.FiveHour == nil {
		return failClosed
	}
	if q.FiveHour.RemainingPercent < five {
		return true
	}
	if q.SevenDay == nil {
		return failClosed
	}
	return q.SevenDay.RemainingPercent < seven
}

// oracleKilled restates the killswitch with its default thresholds (5h 5,
// 7d 10, scoped 0).
func oracleKilled(q *record.QuotaSnapshot, on, failClosed bool, model string) bool {
	if !on {
		return false
	}
	if q == nil {
		return failClosed
	}
	if (q.FiveHour != nil && q.FiveHour.RemainingPercent < 5) || (q.SevenDay != nil && q.SevenDay.RemainingPercent < 10) {
		return true
	}
	if model == "claude-fable-5" {
		for _, sw := range q.Scoped {
			if sw.ModelName == "Fable" && sw.RemainingPercent <= 0 {
				return true
			}
		}
	}
	return (q.FiveHour == nil || q.SevenDay == nil) && failClosed
}
