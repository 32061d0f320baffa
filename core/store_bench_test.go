package core

import (
	"context"
	"fmt"
	"testing"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const benchAccounts = 16

// benchStore writes a realistic pair of files: 16 OAuth accounts with
// tokens, a polled quota snapshot (5h, 7d, two scoped windows, extra
// usage), refresh and quota errors, and a main section.
func benchStore(tb testing.TB) *Store { return benchStoreN(tb, benchAccounts) }

// benchStoreN is benchStore with n accounts.
func benchStoreN(tb testing.TB, n int) *Store {
	tb.Helper()
	s := tempStore(tb, StoreOptions{})
	const at = int64(1_764_331_200_000)
	_, err := s.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
		util := 42.5
		st.Main = &record.MainState{
			Quota:          &record.QuotaSnapshot{Source: record.QuotaSourcePoll, CheckedAt: at, FiveHour: &record.QuotaWindow{UsedPercent: 20, RemainingPercent: 80, CheckedAt: at}},
			QuotaCheckedAt: at, QuotaToken: "0123456789abcdef",
			LastQuotaAPIError: &record.OpError{Message: "Quota API request failed: 429", CheckedAt: at, NextRetryAt: at + 60_000, RetryCount: 1, Status: 429},
		}
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("acct-%02d-6f1c2e0a-5b7d-4c1e-9a3b", i)
			cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: id, Label: fmt.Sprintf("work %d", i), Type: record.AccountOAuth, AddedAt: at})
			st.Accounts[id] = &record.AccountState{
				AuthLineageID: "lineage-" + id,
				Access:        secret.Secret(fmt.Sprintf("sk-ant-oat01-%090d", i)),
				Refresh:       secret.Secret(fmt.Sprintf("sk-ant-ort01-%090d", i)),
				Expires:       at + 8*3_600_000, LastUsed: at, LastRefreshedAt: at,
				LastRefreshError: &record.OpError{Message: "Claude OAuth refresh failed: 503 — upstream unavailable", CheckedAt: at, NextRetryAt: at + 300_000,
					RetryCount: 2, AccountIdentity: id, RefreshTokenFingerprint: "fedcba9876543210", Status: 503, Class: "transient"},
				LastQuotaRefreshError: &record.OpError{Message: "Quota API request failed: 500", CheckedAt: at, NextRetryAt: at + 60_000, Status: 500},
				Quota: &record.QuotaSnapshot{
					FiveHour: &record.QuotaWindow{UsedPercent: 37, RemainingPercent: 63, ResetsAt: "2026-11-28T17:00:00Z", CheckedAt: at},
					SevenDay: &record.QuotaWindow{UsedPercent: 12, RemainingPercent: 88, ResetsAt: "2026-12-02T00:00:00Z", CheckedAt: at},
					Scoped: []record.ScopedWindow{
						{ID: "weekly_opus", Title: "Opus only", ModelID: "claude-opus", ModelName: "Opus", UsedPercent: 5, RemainingPercent: 95, ResetsAt: "2026-12-02T00:00:00Z", CheckedAt: at},
						{ID: "weekly_fable", Title: "Fable only", ModelName: "Fable", UsedPercent: 50, RemainingPercent: 50, CheckedAt: at},
					},
					ExtraUsage:    &record.ExtraUsage{Used: record.Money{AmountMinor: 1250, Currency: "USD", Exponent: 2}, Limit: record.Money{AmountMinor: 5000, Currency: "USD", Exponent: 2}, UtilizationPercent: &util},
					BindingWindow: "five_hour", BindingWindowSource: record.QuotaSourcePoll,
					FieldSources: map[string]string{"five_hour": "poll", "seven_day": "poll", "scoped": "poll", "extraUsage": "poll"},
					Source:       record.QuotaSourcePoll, AccountIdentity: id, CheckedAt: at,
				},
				Profile: []byte(`{"tier":"default_claude_max_20x","orgType":"claude_max","checkedAt":1764331200000}`),
			}
		}
		return nil
	})
	require.NoError(tb, err)
	return s
}

// TestBenchStoreFixture checks what the benchmarks measure: the fixture
// loads with 16 usable accounts carrying quota and errors.
func TestBenchStoreFixture(t *testing.T) {
	s := benchStore(t)
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	require.Len(t, snap.Accounts, benchAccounts)
	for _, a := range snap.Accounts {
		assert.Empty(t, a.Problem, a.ID)
		assert.Len(t, a.State.Quota.Scoped, 2)
		assert.NotNil(t, a.State.LastRefreshError)
	}
}

func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	b.Run("load_16_accounts", func(b *testing.B) {
		s := benchStore(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Load(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("save_16_accounts", func(b *testing.B) {
		s := benchStore(b)
		id := fmt.Sprintf("acct-%02d-6f1c2e0a-5b7d-4c1e-9a3b", 7)
		n := int64(0)
		b.ReportAllocs()
		for b.Loop() {
			n++
			if _, err := s.UpdateState(ctx, func(st *record.StateFile) error {
				st.Accounts[id].LastUsed = n // a real change: the file is rewritten
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
