package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAllocate_workedExample reproduces upstream's worked example: twelve
// 1 MB Fable sessions split 1 : 11 between an account at 97/51/13 %
// remaining (Fable scoped 13 %, reset in 132 h) and one at 100/99/98 %
// (reset in 91 h).
func TestAllocate_workedExample(t *testing.T) {
	now := policyNow
	checked := now.Add(-time.Minute)
	scarce := &record.QuotaSnapshot{
		FiveHour: win(97, checked, 3*time.Hour),
		SevenDay: win(51, checked, 132*time.Hour),
		Scoped:   []record.ScopedWindow{scoped("Fable", 13, checked, 132*time.Hour)},
	}
	abundant := &record.QuotaSnapshot{
		FiveHour: win(100, checked, 0),
		SevenDay: win(99, checked, 91*time.Hour),
		Scoped:   []record.ScopedWindow{scoped("Fable", 98, checked, 91*time.Hour)},
	}
	s := defaultSettings()
	cands := []policy.AllocCandidate{
		{ID: "main", Order: 0, Quota: scarce, Known: true},
		{ID: "abundant", Order: 1, Quota: abundant, Known: true},
	}
	assignments := map[string]*stickyAssignment{}
	counts := map[string]int{}
	for i := 0; i < 12; i++ {
		id, ok := allocate(cands, assignments, s, 1<<20, "fable", "claude-fable-5", now)
		require.True(t, ok)
		counts[id]++
		assignments[fmt.Sprint(i)] = &stickyAssignment{AccountID: id, InitialInputBytes: 1 << 20, QuotaCheckedAt: cands[map[string]int{"main": 0, "abundant": 1}[id]].Quota.LatestCheck()}
	}
	assert.Equal(t, map[string]int{"main": 1, "abundant": 11}, counts)
}

func TestAllocate_rules(t *testing.T) {
	now := policyNow
	checked := now.Add(-time.Minute)
	s := defaultSettings()
	s.MinimumRemaining = policy.Thresholds{FiveHour: 20}
	known := func(five, seven float64) *record.QuotaSnapshot { return snapQ(five, seven, checked) }
	t.Run("unknown everywhere picks the lowest order", func(t *testing.T) {
		id, ok := allocate([]policy.AllocCandidate{{ID: "b", Order: 2}, {ID: "a", Order: 1}}, nil, s, 10, "general", "", now)
		require.True(t, ok)
		assert.Equal(t, "a", id)
	})
	t.Run("unknown quota weighs nothing next to known quota", func(t *testing.T) {
		id, ok := allocate([]policy.AllocCandidate{{ID: "u", Order: 0}, {ID: "k", Order: 1, Quota: known(50, 50), Known: true}}, nil, s, 10, "general", "", now)
		require.True(t, ok)
		assert.Equal(t, "k", id)
	})
	t.Run("nothing above the reserve allocates nothing", func(t *testing.T) {
		_, ok := allocate([]policy.AllocCandidate{{ID: "k", Quota: known(20, 50), Known: true}}, nil, s, 10, "general", "", now)
		assert.False(t, ok)
	})
	t.Run("stale quota weighs nothing", func(t *testing.T) {
		_, ok := allocate([]policy.AllocCandidate{{ID: "k", Quota: snapQ(90, 90, now.Add(-10*time.Minute)), Known: true}}, nil, s, 10, "general", "", now)
		assert.False(t, ok)
	})
	t.Run("opus goes to Fable-dead accounts first", func(t *testing.T) {
		dead := snapQ(30, 30, checked, scoped("Fable", 0, checked, 0))
		id, ok := allocate([]policy.AllocCandidate{{ID: "rich", Quota: known(100, 100), Known: true}, {ID: "dead", Order: 1, Quota: dead, Known: true}}, nil, s, 10, "opus", "claude-opus-4-7", now)
		require.True(t, ok)
		assert.Equal(t, "dead", id)
	})
	t.Run("ties go by order then id", func(t *testing.T) {
		id, _ := allocate([]policy.AllocCandidate{{ID: "z", Order: 1, Quota: known(50, 50), Known: true}, {ID: "y", Order: 1, Quota: known(50, 50), Known: true}}, nil, s, 10, "general", "", now)
		assert.Equal(t, "y", id)
	})
	t.Run("pending bytes count only since the current observation", func(t *testing.T) {
		a, b := known(50, 50), known(50, 50)
		as := map[string]*stickyAssignment{
			"old": {AccountID: "a", InitialInputBytes: 1 << 30, QuotaCheckedAt: 1},
			"new": {AccountID: "b", InitialInputBytes: 100, QuotaCheckedAt: b.LatestCheck()},
		}
		id, _ := allocate([]policy.AllocCandidate{{ID: "a", Quota: a, Known: true}, {ID: "b", Order: 1, Quota: b, Known: true}}, as, s, 10, "general", "", now)
		assert.Equal(t, "a", id)
	})
	t.Run("killswitch raises the reserve", func(t *testing.T) {
		ks := s
		ks.MinimumRemaining = policy.Thresholds{}
		ks.Killswitch.Enabled = true
		assert.Equal(t, 0.0, policy.StickyWeight(snapQ(5, 90, checked), ks, "a", "general", "", now))
	})
}

func TestStickyRetryAfter_jitter(t *testing.T) {
	key := sessionKey("session-1")
	a := stickyRetryAfter(key, 840*time.Second)
	assert.Equal(t, a, stickyRetryAfter(sessionKey("session-1"), 840*time.Second), "deterministic per session")
	assert.GreaterOrEqual(t, a, 840*time.Second)
	assert.LessOrEqual(t, a, 860*time.Second)
	assert.Equal(t, time.Second+(a-840*time.Second), stickyRetryAfter(key, 0), "at least one second")
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		seen[stickyRetryAfter(sessionKey(fmt.Sprint("s", i)), 0)] = true
	}
	assert.Greater(t, len(seen), 15, "jitter spreads sessions over 0..20 s")
}
