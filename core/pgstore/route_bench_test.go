package pgstore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/internal/pgtest"
)

var benchNow = time.UnixMilli(1800000000000)

// benchEngine is an engine on the files or on the postgres store, holding
// the same three fallbacks with fresh quota, with the given routing mode
// and main credentials set. Upstream endpoints refuse connections: the
// measured paths make no calls.
func benchEngine(tb testing.TB, onPostgres bool, mode string) *core.Engine {
	dir := tb.TempDir()
	paths := core.Paths{Config: filepath.Join(dir, core.ConfigFileName), State: filepath.Join(dir, core.StateFileName),
		RoutingState: filepath.Join(dir, "anthropic-auth-routing-state.json")}
	opts := core.StoreOptions{Paths: paths}
	if onPostgres {
		opts.Backend = openStore(tb, pgtest.DB(tb), testKeys(tb), "bench").Backend()
	}
	store, err := core.NewStore(opts)
	require.NoError(tb, err)
	at := benchNow.UnixMilli()
	_, err = store.UpdateConfig(context.Background(), func(cfg *record.ConfigFile, st *record.StateFile) error {
		cfg.Extra = record.Extra{"routing": json.RawMessage(fmt.Sprintf(`{"mode":%q}`, mode))}
		for i := 0; i < 3; i++ {
			id := fmt.Sprintf("fb-%d", i)
			cfg.Accounts = append(cfg.Accounts, record.AccountConfig{ID: id, Type: record.AccountOAuth})
			st.Accounts[id] = &record.AccountState{Access: secret.Secret("a-" + id), Refresh: secret.Secret("r-" + id), Expires: at + 8*3600_000,
				Quota: &record.QuotaSnapshot{Source: record.QuotaSourcePoll, CheckedAt: at,
					FiveHour: &record.QuotaWindow{UsedPercent: float64(20 + i), RemainingPercent: float64(80 - i), CheckedAt: at},
					SevenDay: &record.QuotaWindow{UsedPercent: 30, RemainingPercent: 70, CheckedAt: at}}}
		}
		return nil
	})
	require.NoError(tb, err)
	e, err := core.New(core.Options{Store: store, Clock: core.NewManualClock(benchNow),
		Endpoints: core.Endpoints{Token: "http://127.0.0.1:1/token", Usage: "http://127.0.0.1:1/usage", Profile: "http://127.0.0.1:1/profile"}})
	require.NoError(tb, err)
	_, err = e.SetMain(context.Background(), core.MainCredentials{Access: "main-access", Refresh: "main-refresh", Expires: at + 8*3600_000})
	require.NoError(tb, err)
	return e
}

// BenchmarkRoute measures route/select and route/report (a 200) on both
// stores, in one run so the ratio is meaningful:
//
//	go test ./core/pgstore -run '^$' -bench Route -benchtime 2000x
func BenchmarkRoute(b *testing.B) {
	for _, mode := range []string{"ordered", "sticky-balanced"} {
		for _, store := range []string{"files", "postgres"} {
			e := benchEngine(b, store == "postgres", mode)
			ctx := context.Background()
			req := func(i int) core.SelectRequest {
				return core.SelectRequest{SessionID: fmt.Sprintf("session-%d", i%64), Model: "claude-opus-4-7", PromptBytes: 50_000}
			}
			// Sessions assigned before timing: the steady state.
			for i := 0; i < 64; i++ {
				_, err := e.Select(ctx, req(i))
				require.NoError(b, err)
			}
			b.Run(mode+"/"+store+"/select", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					if _, err := e.Select(ctx, req(i)); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(mode+"/"+store+"/report", func(b *testing.B) {
				r, err := e.Select(ctx, req(0))
				require.NoError(b, err)
				for i := 0; i < b.N; i++ {
					if _, err := e.Report(ctx, core.ReportRequest{Route: *r, Status: 200, Replayable: true}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
