package abi

import (
	"net/http"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// TestInputHeaderAllowList: only what classification needs reaches a
// guest; credentials and request identifiers never do.
func TestInputHeaderAllowList(t *testing.T) {
	cases := []struct {
		name    string
		allowed bool
	}{
		{"Retry-After", true},
		{"X-Should-Retry", true},
		{"Content-Type", true},
		{"Anthropic-Organization-Id", true},
		{"Anthropic-Ratelimit-Unified-Status", true},
		{"Anthropic-Ratelimit-Unified-5h-Reset", true},
		{"Anthropic-Ratelimit-Requests-Remaining", true},
		{"X-Ratelimit-Remaining", true},
		{"Www-Authenticate", false},
		{"Request-Id", false},
		{"X-Request-Id", false},
		{"Cf-Ray", false},
		{"Authorization", false},
		{"Cookie", false},
		{"Set-Cookie", false},
		{"X-Api-Key", false},
		{"Server", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := NewInput(verdict.Failure{Header: http.Header{tc.name: {"v"}}}, verdict.Verdict{}, nil)
			var got map[string]string
			for _, h := range in.Headers() {
				got = map[string]string{h.Name: h.Value}
			}
			if tc.allowed {
				assert.Equal(t, map[string]string{strings.ToLower(tc.name): "v"}, got)
			} else {
				assert.Empty(t, got)
			}
		})
	}
}

// TestInputRedactsEveryString: body, header values, message and the
// built-in reason are redacted with the patterns and the known secrets.
func TestInputRedactsEveryString(t *testing.T) {
	const known = "plainKNOWNtoken0123456789abcdef"
	f := verdict.Failure{Source: verdict.SourceToken, Status: 400,
		Header:  http.Header{"Retry-After": {"1 " + known}},
		Body:    []byte(`{"error":"invalid_grant","refresh_token":"rt-123","note":"` + known + `","k":"sk-ant-ort01-abcdefgh"}`),
		Message: "token call failed: " + known}
	in := NewInput(f, verdict.Verdict{Class: verdict.ClassInvalidGrant, Reason: "builtin saw " + known}, []secret.Secret{known})
	raw := string(in.Append(nil, MaxBody))
	for _, leak := range []string{known, "rt-123", "sk-ant-ort01-abcdefgh"} {
		assert.NotContains(t, raw, leak)
	}
	var decoded struct {
		Headers map[string]string       `json:"headers"`
		Body    string                  `json:"body"`
		Message string                  `json:"message"`
		Builtin struct{ Reason string } `json:"builtin"`
	}
	require.NoError(t, json.Unmarshal([]byte(raw), &decoded))
	assert.Equal(t, map[string]string{"retry-after": "1 [redacted]"}, decoded.Headers)
	assert.Equal(t, `{"error":"invalid_grant","refresh_token":"[redacted]","note":"[redacted]","k":"[redacted]"}`, decoded.Body)
	assert.Equal(t, "token call failed: [redacted]", decoded.Message)
	assert.Equal(t, "builtin saw [redacted]", decoded.Builtin.Reason)
}

// TestInputRedactsBeforeCutting: a credential straddling the body cut is
// replaced whole; no prefix of it survives the cut.
func TestInputRedactsBeforeCutting(t *testing.T) {
	const known = "plainKNOWNtoken0123456789abcdef"
	for _, tok := range []string{known, "sk-ant-oat01-" + strings.Repeat("Z", 40)} {
		body := strings.Repeat("a", MaxBody-5) + tok + " " + strings.Repeat("b", 100)
		in := NewInput(verdict.Failure{Body: []byte(body)}, verdict.Verdict{}, []secret.Secret{known})
		assert.True(t, in.BodyTruncated)
		assert.LessOrEqual(t, len(in.Body), MaxBody)
		assert.NotContains(t, in.Body, tok[:5], "a prefix of the token survived the cut")
		assert.True(t, strings.HasSuffix(in.Body, "a[reda"), "the redaction mark is cut, not the token: %q", in.Body[len(in.Body)-20:])
	}
	// A body shorter after redaction than the cap is whole, not truncated.
	in := NewInput(verdict.Failure{Body: []byte("x " + known)}, verdict.Verdict{}, []secret.Secret{known})
	assert.False(t, in.BodyTruncated)
	assert.Equal(t, "x [redacted]", in.Body)
}
