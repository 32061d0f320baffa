package sdk

import (
	"net/http"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins/internal/abi"
)

// TestParseInputMatchesHost: what the host's encoder writes, the SDK reads.
func TestParseInputMatchesHost(t *testing.T) {
	f := verdict.Failure{Source: verdict.SourceToken, Status: 400, Network: false,
		Header:  http.Header{"Retry-After": {"30"}, "Anthropic-Organization-Id": {"org-\"1\""}, "Cookie": {"x"}},
		Body:    []byte("{\"error\":\"invalid_grant\"}\n\t\x01 \xff é 😀"),
		Message: "refresh: 400 \\ done"}
	b := verdict.ClassifyBuiltin(f)
	raw := abi.AppendInput(nil, f, b, abi.MaxBody)
	in, err := ParseInput(raw)
	require.NoError(t, err)
	assert.Equal(t, "token", in.Source)
	assert.Equal(t, 400, in.Status)
	assert.Equal(t, map[string]string{"retry-after": "30", "anthropic-organization-id": "org-\"1\""}, in.Headers)
	assert.Equal(t, "{\"error\":\"invalid_grant\"}\n\t\x01 \uFFFD é 😀", in.Body)
	assert.Equal(t, f.Message, in.Message)
	assert.Equal(t, Verdict{Class: "invalid_grant", RetryAfterMs: 30000, Reason: b.Reason}, in.Builtin)

	// The same document through a reflective decoder agrees.
	var ref struct {
		Body string `json:"body"`
	}
	require.NoError(t, json.Unmarshal(raw, &ref))
	assert.Equal(t, ref.Body, in.Body)
}

func TestParseInputEdges(t *testing.T) {
	in, err := ParseInput([]byte(` {"abi":1, "future":[1,{"a":null},"x",true], "status": 429 ,"body":"\ud83d\ude00\u00e9\/","network":true} `))
	require.NoError(t, err)
	assert.Equal(t, 429, in.Status)
	assert.Equal(t, "😀é/", in.Body)
	assert.True(t, in.Network)
	for _, bad := range []string{``, `{`, `{"status":}`, `{"body":"\x"}`, `{"a":1}x`, `[1]`} {
		_, err := ParseInput([]byte(bad))
		assert.Error(t, err, bad)
	}
}

func TestRunAndAppendVerdict(t *testing.T) {
	Handle(func(in Input) (Verdict, bool) {
		if in.Status != 403 {
			return Verdict{}, false
		}
		v := in.Builtin
		v.Class, v.Reason = ClassInvalidGrant, "quote \" and \n newline"
		return v, true
	})
	defer Handle(nil)
	f := verdict.Failure{Source: verdict.SourceUsage, Status: 403}
	out := Run(nil, abi.AppendInput(nil, f, verdict.ClassifyBuiltin(f), abi.MaxBody))
	o, err := abi.DecodeOutput(out)
	require.NoError(t, err)
	assert.Equal(t, verdict.ClassInvalidGrant, o.Class)
	assert.Equal(t, "quote \" and \n newline", o.Reason)
	require.NotNil(t, o.RetryAfter)
	assert.Zero(t, *o.RetryAfter)

	f.Status = 401
	assert.Empty(t, Run(nil, abi.AppendInput(nil, f, verdict.ClassifyBuiltin(f), abi.MaxBody)))
	assert.Equal(t, `{"class":"transient","reason":""}`, string(AppendVerdict(nil, Verdict{Class: ClassTransient, RetryAfterMs: -1})))
}

func BenchmarkParseInput(b *testing.B) {
	f := verdict.Failure{Source: verdict.SourceUsage, Status: 403, Header: http.Header{"Anthropic-Organization-Id": {"org-1"}},
		Body: []byte(`{"type":"error","error":{"type":"permission_error"}}`)}
	raw := abi.AppendInput(nil, f, verdict.ClassifyBuiltin(f), abi.MaxBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInput(raw); err != nil {
			b.Fatal(err)
		}
	}
}
