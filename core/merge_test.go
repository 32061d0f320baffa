package core

import (
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pollQuota(at int64) *QuotaSnapshot {
	return &QuotaSnapshot{Source: QuotaSourcePoll, CheckedAt: at,
		FiveHour: &QuotaWindow{UsedPercent: 10, RemainingPercent: 90, CheckedAt: at},
		Scoped:   []ScopedWindow{}}
}

func headerQuota(at int64, used float64) *QuotaSnapshot {
	return &QuotaSnapshot{Source: QuotaSourceHeaders, CheckedAt: at,
		FiveHour:     &QuotaWindow{UsedPercent: used, RemainingPercent: 100 - used, CheckedAt: at},
		FieldSources: map[string]string{"five_hour": QuotaSourceHeaders}}
}

func opErr(msg string, at int64) *OpError { return &OpError{Message: msg, CheckedAt: at} }

func TestMergeAccountState(t *testing.T) {
	profile := json.RawMessage(`{"tier":"max","orgType":"x","checkedAt":1}`)
	cases := []struct {
		name           string
		disk, incoming *AccountState
		check          func(t *testing.T, got *AccountState)
	}{
		{
			name:     "no disk entry takes incoming",
			incoming: &AccountState{Refresh: "r1", Quota: pollQuota(5)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, Secret("r1"), got.Refresh)
				assert.Equal(t, int64(5), got.Quota.CheckedAt)
			},
		},
		{
			name:     "stale writer cannot roll credentials back",
			disk:     &AccountState{Access: "a2", Refresh: "r2", LastRefreshedAt: 200, LastUsed: 10, Quota: pollQuota(300)},
			incoming: &AccountState{Access: "a1", Refresh: "r1", LastRefreshedAt: 100, LastUsed: 20, Quota: pollQuota(150)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, Secret("a2"), got.Access)
				assert.Equal(t, Secret("r2"), got.Refresh)
				assert.Equal(t, int64(200), got.LastRefreshedAt)
				assert.Equal(t, int64(20), got.LastUsed, "a newer lastUsed is taken")
				assert.Equal(t, int64(300), got.Quota.CheckedAt)
			},
		},
		{
			name:     "newer refresh with older quota: tokens taken, profile and source-less quota dropped",
			disk:     &AccountState{Access: "a1", Refresh: "r1", LastRefreshedAt: 100, Quota: pollQuota(300), Profile: profile, LastQuotaRefreshError: opErr("q", 250)},
			incoming: &AccountState{Access: "a2", Refresh: "r2", LastRefreshedAt: 400, Quota: &QuotaSnapshot{CheckedAt: 100}},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, Secret("r2"), got.Refresh)
				assert.Nil(t, got.Profile, "profile belongs to the old token")
				assert.Nil(t, got.Quota, "incoming quota has no source")
				assert.Nil(t, got.LastQuotaRefreshError)
			},
		},
		{
			name:     "newer refresh with older sourced quota keeps incoming quota and profile",
			disk:     &AccountState{Refresh: "r1", LastRefreshedAt: 100, Quota: pollQuota(300)},
			incoming: &AccountState{Refresh: "r2", LastRefreshedAt: 400, Quota: pollQuota(50), Profile: profile, LastQuotaRefreshError: opErr("q", 60)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, int64(50), got.Quota.CheckedAt)
				assert.JSONEq(t, string(profile), string(got.Profile))
				assert.Equal(t, "q", got.LastQuotaRefreshError.Message)
			},
		},
		{
			name:     "same token, disk quota newer: disk quota and quota error stay",
			disk:     &AccountState{Refresh: "r1", Quota: pollQuota(300), LastQuotaRefreshError: opErr("disk", 300)},
			incoming: &AccountState{Refresh: "r1", Expires: 999, Quota: pollQuota(100)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, int64(999), got.Expires, "other incoming fields win")
				assert.Equal(t, int64(300), got.Quota.CheckedAt)
				assert.Equal(t, "disk", got.LastQuotaRefreshError.Message)
			},
		},
		{
			name:     "equal quota time: poll on disk beats headers incoming without merge when token changed",
			disk:     &AccountState{Refresh: "r1", LastRefreshedAt: 100, Quota: pollQuota(300)},
			incoming: &AccountState{Refresh: "r2", LastRefreshedAt: 50, Quota: headerQuota(300, 40)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, Secret("r1"), got.Refresh, "disk newer and incoming refresh older: disk whole")
				assert.Equal(t, QuotaSourcePoll, got.Quota.Source)
			},
		},
		{
			name:     "incoming quota newer: incoming wins and its missing quota error clears disk's",
			disk:     &AccountState{Refresh: "r1", Quota: pollQuota(100), LastQuotaRefreshError: opErr("old", 100), Profile: profile},
			incoming: &AccountState{Refresh: "r1", Quota: pollQuota(200)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, int64(200), got.Quota.CheckedAt)
				assert.Nil(t, got.LastQuotaRefreshError)
				assert.JSONEq(t, string(profile), string(got.Profile), "same token keeps the profile")
			},
		},
		{
			name:     "header quota with the same token merges into the poll snapshot",
			disk:     &AccountState{Refresh: "r1", Quota: &QuotaSnapshot{Source: QuotaSourcePoll, CheckedAt: 300, Scoped: []ScopedWindow{{ID: "s", Title: "T", ModelName: "m", CheckedAt: 300}}, FiveHour: &QuotaWindow{UsedPercent: 10, RemainingPercent: 90, CheckedAt: 300}}},
			incoming: &AccountState{Refresh: "r1", Quota: headerQuota(400, 70)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, float64(70), got.Quota.FiveHour.UsedPercent, "newer header window")
				assert.Len(t, got.Quota.Scoped, 1, "scoped is poll-owned and kept")
				assert.Equal(t, QuotaSourceHeaders, got.Quota.Source)
			},
		},
		{
			name:     "refresh errors: the later checkedAt wins",
			disk:     &AccountState{Refresh: "r1", LastRefreshError: opErr("disk", 200)},
			incoming: &AccountState{Refresh: "r1", LastRefreshError: opErr("in", 100)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, "disk", got.LastRefreshError.Message)
			},
		},
		{
			name:     "refresh errors: a tie goes to incoming",
			disk:     &AccountState{Refresh: "r1", LastRefreshError: opErr("disk", 200)},
			incoming: &AccountState{Refresh: "r1", LastRefreshError: opErr("in", 200)},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, "in", got.LastRefreshError.Message)
			},
		},
		{
			name:     "disk-only refresh error stays unless incoming refreshed later",
			disk:     &AccountState{Refresh: "r1", LastRefreshedAt: 100, LastRefreshError: opErr("disk", 150)},
			incoming: &AccountState{Refresh: "r1", LastRefreshedAt: 100},
			check: func(t *testing.T, got *AccountState) {
				require.NotNil(t, got.LastRefreshError)
				assert.Equal(t, "disk", got.LastRefreshError.Message)
			},
		},
		{
			name:     "disk-only refresh error cleared by a later refresh",
			disk:     &AccountState{Refresh: "r1", LastRefreshedAt: 100, LastRefreshError: opErr("disk", 150)},
			incoming: &AccountState{Refresh: "r2", LastRefreshedAt: 160},
			check: func(t *testing.T, got *AccountState) {
				assert.Nil(t, got.LastRefreshError)
				assert.Equal(t, Secret("r2"), got.Refresh)
			},
		},
		{
			name:     "unknown keys merge, incoming winning per key",
			disk:     &AccountState{Refresh: "r1", Extra: Extra{"prime": json.RawMessage(`1`), "keep": json.RawMessage(`"d"`)}},
			incoming: &AccountState{Refresh: "r1", Extra: Extra{"prime": json.RawMessage(`2`)}},
			check: func(t *testing.T, got *AccountState) {
				assert.Equal(t, Extra{"prime": json.RawMessage(`2`), "keep": json.RawMessage(`"d"`)}, got.Extra)
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			diskBefore, _ := json.Marshal(tc.disk)
			inBefore, _ := json.Marshal(tc.incoming)
			got := MergeAccountState(tc.disk, tc.incoming)
			require.NotNil(t, got)
			tc.check(t, got)
			diskAfter, _ := json.Marshal(tc.disk)
			inAfter, _ := json.Marshal(tc.incoming)
			assert.Equal(t, string(diskBefore), string(diskAfter), "disk not modified")
			assert.Equal(t, string(inBefore), string(inAfter), "incoming not modified")
		})
	}
	assert.Nil(t, MergeAccountState(nil, nil))
}

func TestMergeHeaderQuota(t *testing.T) {
	poll := &QuotaSnapshot{Source: QuotaSourcePoll, CheckedAt: 100, BindingWindow: "seven_day", BindingWindowSource: QuotaSourcePoll,
		FiveHour:   &QuotaWindow{UsedPercent: 10, RemainingPercent: 90, CheckedAt: 100},
		ExtraUsage: &ExtraUsage{Exhausted: true}, Scoped: []ScopedWindow{}}
	h := headerQuota(200, 55)
	h.Source = "" // the merge marks it as headers itself
	h.BindingWindow, h.BindingWindowSource = "five_hour", QuotaSourceHeaders
	adv := true
	h.FallbackAdvised = &adv

	got := MergeHeaderQuota(poll, h)
	assert.Equal(t, float64(55), got.FiveHour.UsedPercent)
	assert.Equal(t, "seven_day", got.BindingWindow, "a poll-sourced binding window is kept")
	assert.NotNil(t, got.ExtraUsage)
	assert.NotNil(t, got.Scoped, "[] stays []")
	assert.Equal(t, QuotaSourceHeaders, got.Source)
	assert.Equal(t, QuotaSourceHeaders, got.FieldSources["five_hour"])
	assert.Equal(t, &adv, got.FallbackAdvised)

	older := headerQuota(50, 99)
	assert.Equal(t, float64(10), MergeHeaderQuota(poll, older).FiveHour.UsedPercent, "older header window loses")
	assert.Equal(t, int64(100), poll.FiveHour.CheckedAt, "input unchanged")
	assert.Equal(t, poll.LatestCheck(), MergeHeaderQuota(poll, nil).LatestCheck())
}
