package core

import (
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
)

// Quota fixtures shared by core's tests (the policy's own table tests live in
// core/internal/policy).

var policyNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func win(remaining float64, checked time.Time, reset time.Duration) *record.QuotaWindow {
	w := &record.QuotaWindow{UsedPercent: 100 - remaining, RemainingPercent: remaining, CheckedAt: epochMs(checked)}
	if reset != 0 {
		w.ResetsAt = checked.Add(reset).UTC().Format(time.RFC3339)
	}
	return w
}

func scoped(name string, remaining float64, checked time.Time, reset time.Duration) record.ScopedWindow {
	w := win(remaining, checked, reset)
	return record.ScopedWindow{ID: "claude-weekly-scoped-" + policy.NormalizeModel(name), Title: name + " only", ModelName: name,
		UsedPercent: w.UsedPercent, RemainingPercent: w.RemainingPercent, ResetsAt: w.ResetsAt, CheckedAt: w.CheckedAt}
}

func snapQ(five, seven float64, checked time.Time, sc ...record.ScopedWindow) *record.QuotaSnapshot {
	return &record.QuotaSnapshot{FiveHour: win(five, checked, 2*time.Hour), SevenDay: win(seven, checked, 72*time.Hour), Scoped: sc, CheckedAt: epochMs(checked)}
}

func defaultSettings() policy.Settings {
	s, _ := parseSettingsStrict(nil)
	return s
}
