package core

import (
	"context"
	"fmt"
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
	"os"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"
)

// BenchmarkLoad compares, on the same files (benchStoreN: n OAuth accounts
// with tokens, a polled quota with scoped windows and extra usage, refresh
// and quota errors, a profile), in one run:
//
//   - acctpool: Store.Load (read both files, decode, build the snapshot);
//   - decode: the document types' one-pass decoders alone (readConfig and
//     readState);
//   - plain: goccy/go-json into structs of the same shape with no
//     unknown-key handling (plainState and friends), the honest floor;
//   - any: goccy/go-json into an any.
//
// Run: go test ./core -run '^$' -bench '^BenchmarkLoad$' -benchtime 200x -count 5 | benchstat -
func BenchmarkLoad(b *testing.B) {
	for _, n := range []int{4, 16, 64, 256} {
		s := benchStoreN(b, n)
		p := s.Paths()
		files := []string{p.Config, p.State}
		b.Run(fmt.Sprintf("accounts=%d/acctpool", n), func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Load(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("accounts=%d/decode", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := filestore.ReadConfigFile(p.Config); err != nil {
					b.Fatal(err)
				}
				if _, _, err := filestore.ReadStateFile(p.State); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("accounts=%d/plain", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var c plainConfig
				var st plainState
				for i, v := range []any{&c, &st} {
					raw, err := os.ReadFile(files[i])
					if err != nil {
						b.Fatal(err)
					}
					if err := json.Unmarshal(raw, v); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(fmt.Sprintf("accounts=%d/any", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, f := range files {
					raw, err := os.ReadFile(f)
					if err != nil {
						b.Fatal(err)
					}
					var v any
					if err := json.Unmarshal(raw, &v); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkEncode compares the one-pass encoder of the state file
// (encodeFile, indented as written to disk) with goccy/go-json's
// MarshalIndent of the same document in the plain structs.
func BenchmarkEncode(b *testing.B) {
	for _, n := range []int{16, 256} {
		s := benchStoreN(b, n)
		st, _, err := filestore.ReadStateFile(s.Paths().State)
		require.NoError(b, err)
		raw, err := os.ReadFile(s.Paths().State)
		require.NoError(b, err)
		var plain plainState
		require.NoError(b, json.Unmarshal(raw, &plain))
		b.Run(fmt.Sprintf("accounts=%d/acctpool", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := filestore.Encode(st); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("accounts=%d/plain", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.MarshalIndent(&plain, "", "  "); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPlainShapes checks that the plain structs of the benchmarks read the
// fixture as the document types do, so "plain" decodes the same fields.
func TestPlainShapes(t *testing.T) {
	s := benchStoreN(t, 2)
	raw, err := os.ReadFile(s.Paths().State)
	require.NoError(t, err)
	var plain plainState
	require.NoError(t, json.Unmarshal(raw, &plain))
	out, err := json.MarshalIndent(&plain, "", "  ")
	require.NoError(t, err)
	require.Equal(t, string(raw), string(out)+"\n", "the plain structs carry every field of the fixture")
}

// The plain structs: the document types' fields and tags, without record.Extra
// and without JSON methods at any level.
type (
	plainConfig struct {
		Version       int             `json:"version"`
		MainAccountID string          `json:"mainAccountId,omitempty"`
		Main          json.RawMessage `json:"main,omitempty"`
		Accounts      []plainAccount  `json:"accounts"`
	}
	plainAccount struct {
		ID         string             `json:"id"`
		Label      string             `json:"label,omitempty"`
		Type       record.AccountType `json:"type"`
		Enabled    *bool              `json:"enabled,omitempty"`
		AddedAt    int64              `json:"addedAt,omitempty"`
		BaseURL    string             `json:"baseURL,omitempty"`
		AuthHeader string             `json:"authHeader,omitempty"`
	}
	plainState struct {
		Version  int                           `json:"version"`
		Main     *plainMain                    `json:"main,omitempty"`
		Accounts map[string]*plainAccountState `json:"accounts"`
	}
	plainOpError struct {
		Message                 string        `json:"message"`
		CheckedAt               int64         `json:"checkedAt"`
		NextRetryAt             int64         `json:"nextRetryAt,omitempty"`
		RetryCount              int           `json:"retryCount,omitempty"`
		AccountIdentity         string        `json:"accountIdentity,omitempty"`
		TokenHash               string        `json:"tokenHash,omitempty"`
		RefreshTokenFingerprint string        `json:"refreshTokenFingerprint,omitempty"`
		Status                  int           `json:"status,omitempty"`
		Permanent               *bool         `json:"permanent,omitempty"`
		Class                   verdict.Class `json:"class,omitempty"`
		DecidedBy               string        `json:"decidedBy,omitempty"`
	}
	plainQuota struct {
		FiveHour            *record.QuotaWindow   `json:"five_hour,omitempty"`
		SevenDay            *record.QuotaWindow   `json:"seven_day,omitempty"`
		Scoped              []record.ScopedWindow `json:"scoped,omitzero"`
		ExtraUsage          *record.ExtraUsage    `json:"extraUsage,omitempty"`
		BindingWindow       string                `json:"bindingWindow,omitempty"`
		BindingWindowSource string                `json:"bindingWindowSource,omitempty"`
		FieldSources        map[string]string     `json:"fieldSources,omitempty"`
		FallbackAdvised     *bool                 `json:"fallbackAdvised,omitempty"`
		Source              string                `json:"source,omitempty"`
		AccountIdentity     string                `json:"accountIdentity,omitempty"`
		CheckedAt           int64                 `json:"checkedAt,omitempty"`
	}
	plainSpent struct {
		FiveHour  int64 `json:"five_hour,omitempty"`
		SevenDay  int64 `json:"seven_day,omitempty"`
		CheckedAt int64 `json:"checkedAt"`
	}
	plainAccountState struct {
		AuthLineageID         string          `json:"authLineageId,omitempty"`
		AnthropicAccountUUID  string          `json:"anthropicAccountUuid,omitempty"`
		Access                string          `json:"access,omitempty"`
		Refresh               string          `json:"refresh,omitempty"`
		Expires               int64           `json:"expires,omitempty"`
		APIKey                string          `json:"apiKey,omitempty"`
		LastUsed              int64           `json:"lastUsed,omitempty"`
		LastRefreshedAt       int64           `json:"lastRefreshedAt,omitempty"`
		LastRefreshError      *plainOpError   `json:"lastRefreshError,omitempty"`
		LastQuotaRefreshError *plainOpError   `json:"lastQuotaRefreshError,omitempty"`
		Quota                 *plainQuota     `json:"quota,omitempty"`
		Profile               json.RawMessage `json:"profile,omitempty"`
		RateLimited           *plainSpent     `json:"rateLimited,omitempty"`
	}
	plainMain struct {
		Quota                 *plainQuota     `json:"quota,omitempty"`
		QuotaCheckedAt        int64           `json:"quotaCheckedAt,omitempty"`
		QuotaToken            string          `json:"quotaToken,omitempty"`
		LastQuotaAPIError     *plainOpError   `json:"lastQuotaApiError,omitempty"`
		QuotaErrorGeneration  int64           `json:"quotaErrorGeneration,omitempty"`
		QuotaErrorClearedAt   int64           `json:"quotaErrorClearedAt,omitempty"`
		LastRefreshError      *plainOpError   `json:"lastRefreshError,omitempty"`
		RefreshErrorClearedAt int64           `json:"refreshErrorClearedAt,omitempty"`
		RefreshLeaseID        string          `json:"refreshLeaseId,omitempty"`
		RefreshLeaseUntil     int64           `json:"refreshLeaseUntil,omitempty"`
		RefreshLeaseTokenHash string          `json:"refreshLeaseTokenHash,omitempty"`
		Profile               json.RawMessage `json:"profile,omitempty"`
		RateLimited           *plainSpent     `json:"rateLimited,omitempty"`
	}
)
