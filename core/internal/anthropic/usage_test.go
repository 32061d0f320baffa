package anthropic

import (
	"net/http"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/record"
)

// Usage answers as the usage endpoint gives them.
const (
	usageOK            = `{"five_hour":{"utilization":40,"resets_at":"2026-11-28T15:00:00Z"},"seven_day":{"utilization":75.5,"resets_at":null}}`
	usagePermissionErr = `{"type":"error","error":{"type":"permission_error","message":"OAuth authentication is currently not allowed for this organization."}}`
)

func TestParseUsage_shapes(t *testing.T) {
	t.Run("limits with weekly_scoped", func(t *testing.T) {
		body := `{"limits":[
			{"kind":"session","group":"session","percent":10,"is_active":true},
			{"kind":"weekly_scoped","group":"weekly","percent":87,"resets_at":"2026-12-01T00:00:00Z","scope":{"model":{"id":"claude-fable-5","display_name":"Fable"}}},
			{"kind":"weekly_scoped","group":"weekly","percent":50,"scope":{"model":{"id":null,"display_name":""}}}],
			"five_hour":{"utilization":10},"seven_day":{"utilization":120}}`
		q, err := ParseUsage([]byte(body), testNow)
		require.NoError(t, err)
		require.Len(t, q.Scoped, 1)
		assert.Equal(t, "claude-weekly-scoped-claude-fable-5", q.Scoped[0].ID)
		assert.Equal(t, "Fable only", q.Scoped[0].Title)
		assert.Equal(t, 13.0, q.Scoped[0].RemainingPercent)
		assert.Equal(t, "five_hour", q.BindingWindow)
		assert.Equal(t, 0.0, q.SevenDay.RemainingPercent, "utilization is clamped to 100")
		assert.Equal(t, record.QuotaSourcePoll, q.Source)
	})
	t.Run("flat windows and no scoped keeps an empty list", func(t *testing.T) {
		q, err := ParseUsage([]byte(`{"five_hour":{"utilization":1},"seven_day_opus":{"utilization":99}}`), testNow)
		require.NoError(t, err)
		assert.NotNil(t, q.Scoped)
		assert.Empty(t, q.Scoped)
		assert.Nil(t, q.SevenDay)
	})
	t.Run("invalid JSON", func(t *testing.T) {
		_, err := ParseUsage([]byte(`{"five_hour":`), testNow)
		assert.EqualError(t, err, "usage response: invalid JSON")
	})
	t.Run("fields of unexpected type are dropped, the rest stored", func(t *testing.T) {
		q, err := ParseUsage([]byte(`{"five_hour":{"utilization":"12","resets_at":"2026-11-28T14:00:00Z"},"seven_day":{"utilization":40,"resets_at":7},
			"limits":[{"kind":"weekly_scoped","group":"weekly","percent":"x","scope":{"model":{"display_name":"Fable"}}},
			{"kind":"weekly_scoped","group":"weekly","percent":30,"scope":{"model":{"display_name":"Opus","id":5}}}, 17],
			"extra_usage":"on"}`), testNow)
		require.NoError(t, err)
		assert.Nil(t, q.FiveHour, "a window without a numeric utilization is unknown")
		require.NotNil(t, q.SevenDay)
		assert.Equal(t, 60.0, q.SevenDay.RemainingPercent)
		assert.Empty(t, q.SevenDay.ResetsAt)
		require.Len(t, q.Scoped, 1)
		assert.Equal(t, "Opus", q.Scoped[0].ModelName)
		assert.Nil(t, q.ExtraUsage)
	})
}

// The fuzz targets of the parsers. `go test` runs their seeds
// (testdata/fuzz and the f.Add calls); scripts/fuzz runs each for a while.

// checkSnapshot holds what every parsed quota snapshot must satisfy: it
// encodes (no NaN or infinity) and percentages are within 0..100. With
// ownResets, reset times were written by us and must be RFC 3339 (a poll's
// resets_at is kept as the API sent it).
func checkSnapshot(t *testing.T, q *record.QuotaSnapshot, ownResets bool) {
	t.Helper()
	_, err := json.Marshal(q)
	require.NoError(t, err, "a parsed snapshot must encode")
	windows := []*record.QuotaWindow{q.FiveHour, q.SevenDay}
	for i := range q.Scoped {
		w := q.Scoped[i].Window()
		windows = append(windows, &w)
	}
	for _, w := range windows {
		if w == nil {
			continue
		}
		assert.True(t, w.UsedPercent >= 0 && w.UsedPercent <= 100, "used %v", w.UsedPercent)
		assert.True(t, w.RemainingPercent >= 0 && w.RemainingPercent <= 100, "remaining %v", w.RemainingPercent)
		if ownResets && w.ResetsAt != "" {
			_, err := time.Parse(time.RFC3339, w.ResetsAt)
			assert.NoError(t, err, "resetsAt %q", w.ResetsAt)
		}
	}
}

// FuzzParseUsage: the usage payload parser never panics and what it
// accepts is a sound snapshot.
func FuzzParseUsage(f *testing.F) {
	for _, s := range []string{
		usageOK, usagePermissionErr, `{"five_hour":`, `{}`, `null`, `[]`,
		`{"five_hour":{"utilization":1e308},"seven_day":{"utilization":-5,"resets_at":"not a time"}}`,
		`{"limits":[{"kind":"weekly_scoped","group":"opus","percent":50,"resets_at":"2026-12-01T00:00:00Z","is_active":true,"scope":{"model":{"id":"claude-opus-4","display_name":"Opus"}}}]}`,
		`{"extra_usage":{"is_enabled":true,"monthly_limit":100,"used_credits":250,"utilization":null},"spend":{"severity":"high","limit":{"currency":"usd","exponent":2}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, err := ParseUsage(body, testNow)
		if err != nil {
			return
		}
		require.NotNil(t, q)
		checkSnapshot(t, q, false)
	})
}

// FuzzQuotaFromHeaders: header harvesting never panics and what it
// harvests is a sound snapshot. The input is header lines, "name: value".
func FuzzQuotaFromHeaders(f *testing.F) {
	for _, s := range []string{
		"anthropic-ratelimit-unified-5h-utilization: 0.42\nanthropic-ratelimit-unified-5h-reset: 1764342000\nanthropic-ratelimit-unified-7d-utilization: 0.9",
		"anthropic-ratelimit-unified-7d-utilization: 1.5\nanthropic-ratelimit-unified-fallback: available\nanthropic-ratelimit-unified-representative-claim: seven_day",
		"anthropic-ratelimit-unified-5h-utilization: NaN",
		"anthropic-ratelimit-unified-5h-utilization: 1e308\nanthropic-ratelimit-unified-5h-reset: 9223372036854775807",
		"anthropic-ratelimit-unified-5h-utilization: -0.1\nanthropic-ratelimit-unified-5h-reset: -1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lines string) {
		h := http.Header{}
		for _, line := range strings.Split(lines, "\n") {
			if name, value, ok := strings.Cut(line, ":"); ok {
				h.Add(name, value)
			}
		}
		if q := QuotaFromHeaders(h, testNow); q != nil {
			checkSnapshot(t, q, true)
		}
	})
}

func BenchmarkParseUsage(b *testing.B) {
	flat := []byte(usageOK)
	limits := []byte(`{"five_hour":{"utilization":10,"resets_at":"2026-11-28T15:00:00Z"},"seven_day":{"utilization":49,"resets_at":"2026-12-01T00:00:00Z"},
	"limits":[{"kind":"session","group":"session","percent":10,"is_active":true},{"kind":"weekly_all","group":"weekly","percent":49},
	{"kind":"weekly_scoped","group":"weekly","percent":87,"resets_at":"2026-12-01T00:00:00Z","scope":{"model":{"id":"claude-fable-5","display_name":"Fable"}}}],
	"extra_usage":{"is_enabled":true,"monthly_limit":5000,"used_credits":120,"utilization":2.4},"spend":{"severity":"low","limit":{"currency":"USD","exponent":2}}}`)
	for name, body := range map[string][]byte{"flat": flat, "limits": limits} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := ParseUsage(body, testNow); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
