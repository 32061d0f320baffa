package core

import (
	"github.com/acctpool/acctpool/core/record"
)

// mergeQuota combines an existing snapshot with a newer observation. Header
// observations may replace only the 5h/7d windows (newer wins; on a tie a
// poll beats headers), fallbackAdvised, and a bindingWindow that did not
// come from a poll; scoped windows and extra usage are poll-owned and kept.
// A poll replaces everything except 5h/7d windows that headers observed
// later. Neither input is modified.
func mergeQuota(existing, next *record.QuotaSnapshot) *record.QuotaSnapshot {
	if existing == nil {
		return next
	}
	if next == nil {
		return existing
	}
	if next.Source == record.QuotaSourcePoll {
		out := *next
		out.FieldSources = copySources(next.FieldSources)
		out.FiveHour = newerWindow(existing.FiveHour, next.FiveHour, existing.FieldSources["five_hour"], record.QuotaSourcePoll, &out, "five_hour")
		out.SevenDay = newerWindow(existing.SevenDay, next.SevenDay, existing.FieldSources["seven_day"], record.QuotaSourcePoll, &out, "seven_day")
		return &out
	}
	out := *existing
	out.FieldSources = copySources(existing.FieldSources)
	out.FiveHour = newerWindow(existing.FiveHour, next.FiveHour, existing.FieldSources["five_hour"], record.QuotaSourceHeaders, &out, "five_hour")
	out.SevenDay = newerWindow(existing.SevenDay, next.SevenDay, existing.FieldSources["seven_day"], record.QuotaSourceHeaders, &out, "seven_day")
	if next.FallbackAdvised != nil {
		out.FallbackAdvised = next.FallbackAdvised
		out.FieldSources["fallbackAdvised"] = record.QuotaSourceHeaders
	}
	if next.BindingWindow != "" && existing.BindingWindowSource != record.QuotaSourcePoll {
		out.BindingWindow, out.BindingWindowSource = next.BindingWindow, record.QuotaSourceHeaders
		out.FieldSources["bindingWindow"] = record.QuotaSourceHeaders
	}
	out.Source = record.QuotaSourceHeaders
	if next.CheckedAt > out.CheckedAt {
		out.CheckedAt = next.CheckedAt
	}
	return &out
}

// newerWindow picks between an old window (from oldSource) and a new one
// (from newSource) and records the winner's source in out.FieldSources.
func newerWindow(old, nw *record.QuotaWindow, oldSource, newSource string, out *record.QuotaSnapshot, field string) *record.QuotaWindow {
	switch {
	case nw == nil && old == nil:
		return nil
	case nw == nil:
		if oldSource != "" {
			out.FieldSources[field] = oldSource
		}
		return old
	case old == nil:
		out.FieldSources[field] = newSource
		return nw
	}
	if old.CheckedAt > nw.CheckedAt || (old.CheckedAt == nw.CheckedAt && sourceRank(oldSource) > sourceRank(newSource)) {
		if oldSource != "" {
			out.FieldSources[field] = oldSource
		}
		return old
	}
	out.FieldSources[field] = newSource
	return nw
}

func copySources(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+2)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// sourceRank orders quota sources for a tie on checkedAt: a poll beats
// headers.
func sourceRank(s string) int {
	switch s {
	case record.QuotaSourcePoll:
		return 2
	case record.QuotaSourceHeaders:
		return 1
	}
	return 0
}
