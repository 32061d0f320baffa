package core

import (
	"net/http"
	"testing"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
)

var benchFailures = map[string]verdict.Failure{
	"token_403":           {Source: verdict.SourceToken, Status: 403, Body: []byte("Forbidden")},
	"token_invalid_grant": {Source: verdict.SourceToken, Status: 400, Body: []byte(`{"error":"invalid_grant","error_description":"Refresh token not found or invalid"}`)},
	"usage_429_retry_after": {Source: verdict.SourceUsage, Status: 429, Header: http.Header{"Retry-After": {"60"}},
		Body: []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}`)},
}

// TestBenchFixtures pins what the benchmark inputs classify as.
func TestBenchFixtures(t *testing.T) {
	assert.Equal(t, verdict.ClassOrgPolicy, verdict.ClassifyBuiltin(benchFailures["token_403"]).Class)
	assert.Equal(t, verdict.ClassInvalidGrant, verdict.ClassifyBuiltin(benchFailures["token_invalid_grant"]).Class)
	v := verdict.ClassifyBuiltin(benchFailures["usage_429_retry_after"])
	assert.Equal(t, verdict.ClassRateLimited, v.Class)
	assert.EqualValues(t, 60000, v.RetryAfterMs())
}

func BenchmarkClassify(b *testing.B) {
	for _, name := range []string{"token_403", "token_invalid_grant", "usage_429_retry_after"} {
		f := benchFailures[name]
		b.Run("builtin/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				v := verdict.ClassifyBuiltin(f)
				_ = verdict.EffectOf(f.Source, v)
			}
		})
	}
}
