package verdict

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/millis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testStart anchors Retry-After dates.
var testStart = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// TestClassifyBuiltin_table checks every row of the classification table of
// docs/BEHAVIOUR.md §4: the verdict and the effects it implies.
func TestClassifyBuiltin_table(t *testing.T) {
	now := testStart
	cases := []struct {
		name   string
		f      Failure
		class  Class
		effect Effect
	}{
		{"token 400 invalid_grant is permanent", Failure{Source: SourceToken, Status: 400, Body: []byte(`{"error":"invalid_grant"}`)}, ClassInvalidGrant,
			Effect{RefreshBackoff: RefreshBackoffPermanent, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"token 400 plain invalid_grant text", Failure{Source: SourceToken, Status: 400, Body: []byte(`invalid_grant`)}, ClassInvalidGrant,
			Effect{RefreshBackoff: RefreshBackoffPermanent, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"token 400 invalid_client is not permanent", Failure{Source: SourceToken, Status: 400, Body: []byte(`{"error":"invalid_client"}`)}, ClassClientError,
			Effect{RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"token 403 arms 24 h refresh backoff (PR #86 fix)", Failure{Source: SourceToken, Status: 403, Body: []byte("Forbidden")}, ClassOrgPolicy,
			Effect{RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"token 401", Failure{Source: SourceToken, Status: 401}, ClassAuthExpired,
			Effect{RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"token 429", Failure{Source: SourceToken, Status: 429}, ClassRateLimited,
			Effect{RefreshBackoff: RefreshBackoffTransient, PersistRefreshError: true, InQuotaPass: QuotaBackoffTransient}},
		{"token 503", Failure{Source: SourceToken, Status: 503}, ClassTransient,
			Effect{RefreshBackoff: RefreshBackoffTransient, PersistRefreshError: true, InQuotaPass: QuotaBackoffTransient}},
		{"token network", Failure{Source: SourceToken, Network: true}, ClassTransient,
			Effect{RefreshBackoff: RefreshBackoffTransient, PersistRefreshError: true, InQuotaPass: QuotaBackoffTransient}},
		{"token local failure without status", Failure{Source: SourceToken}, ClassClientError,
			Effect{RefreshBackoff: RefreshBackoffLong, PersistRefreshError: true, InQuotaPass: QuotaBackoffFlat}},
		{"usage 401 refreshes and retries", Failure{Source: SourceUsage, Status: 401}, ClassAuthExpired,
			Effect{RefreshAndRetry: true, QuotaBackoff: QuotaBackoffFlat, PersistQuotaError: true}},
		{"usage 403 permission_error arms nothing", Failure{Source: SourceUsage, Status: 403, Body: []byte(`{"type":"error","error":{"type":"permission_error"}}`)}, ClassOrgPolicy,
			Effect{}},
		{"usage 400 with invalid_grant text is still a client error", Failure{Source: SourceUsage, Status: 400, Body: []byte("invalid_grant")}, ClassClientError,
			Effect{QuotaBackoff: QuotaBackoffFlat, PersistQuotaError: true}},
		{"usage 429", Failure{Source: SourceUsage, Status: 429}, ClassRateLimited,
			Effect{QuotaBackoff: QuotaBackoffTransient, PersistQuotaError: true}},
		{"usage 500", Failure{Source: SourceUsage, Status: 500}, ClassTransient,
			Effect{QuotaBackoff: QuotaBackoffTransient, PersistQuotaError: true}},
		{"usage network", Failure{Source: SourceUsage, Network: true}, ClassTransient,
			Effect{QuotaBackoff: QuotaBackoffTransient, PersistQuotaError: true}},
		{"messages 401 falls back after a refresh", Failure{Source: SourceMessages, Status: 401}, ClassAuthExpired,
			Effect{RefreshAndRetry: true, Fallback: true}},
		{"messages 403 falls back", Failure{Source: SourceMessages, Status: 403}, ClassOrgPolicy, Effect{Fallback: true}},
		{"messages 429 falls back after a quota probe", Failure{Source: SourceMessages, Status: 429}, ClassRateLimited, Effect{Fallback: true, ProbeQuota: true}},
		{"messages stream rate limit falls back", Failure{Source: SourceMessages, Status: 200, StreamRateLimit: true}, ClassRateLimited, Effect{Fallback: true, ProbeQuota: true}},
		{"messages 500 is returned", Failure{Source: SourceMessages, Status: 500}, ClassTransient, Effect{}},
		{"messages 404 is returned", Failure{Source: SourceMessages, Status: 404}, ClassClientError, Effect{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.At = now
			v := ClassifyBuiltin(tc.f)
			assert.Equal(t, tc.class, v.Class)
			assert.Equal(t, decidedByBuiltin, v.DecidedBy)
			assert.NotEmpty(t, v.Reason)
			assert.Equal(t, tc.effect, EffectOf(tc.f.Source, v))
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := testStart
	cases := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{"seconds", "120", 120 * time.Second},
		{"fractional seconds round up", "1.2", 2 * time.Second},
		{"zero is ignored", "0", 0},
		{"negative is ignored", "-5", 0},
		{"future date", now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"past date is ignored", now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"garbage is ignored", "soon", 0},
		{"empty", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, parseRetryAfter(tc.value, now))
		})
	}
}

// TestBackoffSchedules pins the one refresh and the one quota schedule.
func TestBackoffSchedules(t *testing.T) {
	min := time.Minute
	refresh := []struct {
		name       string
		kind       RefreshBackoffKind
		retryAfter time.Duration
		network    bool
		count      int
		want       time.Duration
	}{
		{"retry-after wins", RefreshBackoffTransient, 120 * time.Second, false, 3, 120 * time.Second},
		{"retry-after wins over 24 h too", RefreshBackoffLong, 7 * time.Second, false, 1, 7 * time.Second},
		{"network is 5 min flat", RefreshBackoffTransient, 0, true, 4, 5 * min},
		{"transient first", RefreshBackoffTransient, 0, false, 1, 5 * min},
		{"transient second", RefreshBackoffTransient, 0, false, 2, 10 * min},
		{"transient third", RefreshBackoffTransient, 0, false, 3, 20 * min},
		{"transient fourth", RefreshBackoffTransient, 0, false, 4, 40 * min},
		{"transient capped", RefreshBackoffTransient, 0, false, 5, 60 * min},
		{"transient stays capped", RefreshBackoffTransient, 0, false, 40, 60 * min},
		{"long is 24 h", RefreshBackoffLong, 0, false, 1, 24 * time.Hour},
		{"permanent is 24 h", RefreshBackoffPermanent, 0, false, 1, 24 * time.Hour},
		{"none", RefreshBackoffNone, 0, false, 1, 0},
	}
	for _, tc := range refresh {
		t.Run("refresh "+tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, RefreshBackoffDelay(tc.kind, tc.retryAfter, tc.network, tc.count))
		})
	}
	quota := []struct {
		kind  QuotaBackoffKind
		count int
		want  time.Duration
	}{
		{QuotaBackoffTransient, 1, time.Minute}, {QuotaBackoffTransient, 2, 2 * min}, {QuotaBackoffTransient, 3, 4 * min},
		{QuotaBackoffTransient, 4, 8 * min}, {QuotaBackoffTransient, 5, 15 * min}, {QuotaBackoffTransient, 9, 15 * min},
		{QuotaBackoffFlat, 1, 5 * min}, {QuotaBackoffFlat, 7, 5 * min}, {QuotaBackoffNone, 1, 0},
	}
	for _, tc := range quota {
		assert.Equal(t, tc.want, QuotaBackoffDelay(tc.kind, tc.count), "kind %d count %d", tc.kind, tc.count)
	}
}

func TestVerdictUnmarshal_retryAfterRange(t *testing.T) {
	var v Verdict
	require.NoError(t, v.UnmarshalJSON([]byte(`{"class":"rate_limited","retryAfterMs":1500}`)))
	assert.Equal(t, 1500*time.Millisecond, v.RetryAfter)
	for _, bad := range []string{`{"class":"rate_limited","retryAfterMs":-1}`, `{"class":"rate_limited","retryAfterMs":9223372036855}`} {
		var w Verdict
		var re *millis.RangeError
		assert.True(t, errors.As(w.UnmarshalJSON([]byte(bad)), &re), bad)
	}
}
