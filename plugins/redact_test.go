package plugins

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Planted credentials. The shaped ones (sk-ant-…, a JWT) are caught by
// secret.Redact's patterns; the plain ones only because the host knows
// them (Options.KnownSecrets), as it knows the main and stored tokens.
const (
	plantedShaped   = "sk-ant-oat01-PLANTEDshapedACCESStoken0123456789"
	plantedJWT      = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwbGFudGVkIn0.c2lnbmF0dXJlcGxhbnRlZA"
	plantedAccess   = "plainACCESStoken7c1d2e3f4a5b6c7d8e9f"
	plantedRefresh  = "plainREFRESHtoken1a2b3c4d5e6f7a8b9c0d"
	plantedAPIKey   = "plainAPIKEY9f8e7d6c5b4a39281706"
	echoHardcoded   = "hardcoded-7f3a9c1e5b2d4086" // emitted by echo.wasm itself
	visibleBodyMark = "visible-body-marker-42"
)

var planted = []string{plantedShaped, plantedJWT, plantedAccess, plantedRefresh, plantedAPIKey, echoHardcoded}

func knownPlanted(context.Context) []secret.Secret {
	return []secret.Secret{plantedAccess, plantedRefresh, plantedAPIKey, echoHardcoded}
}

// plantedFailure carries every planted token in the body, in allowed and
// in dropped headers, and in the message.
func plantedFailure(status int) verdict.Failure {
	body := `{"error":{"type":"rate_limit_error","message":"` + visibleBodyMark + ` token ` + plantedAccess +
		` refresh ` + plantedRefresh + `"},"access_token":"` + plantedShaped + `","jwt":"` + plantedJWT + `","key":"` + plantedAPIKey + `"}`
	return verdict.Failure{Source: verdict.SourceMessages, Status: status, Body: []byte(body),
		Message: "upstream said " + plantedAccess,
		Header: http.Header{
			"Retry-After":                        {"7"},
			"X-Should-Retry":                     {"true " + plantedRefresh},
			"Anthropic-Ratelimit-Unified-Status": {"rejected " + plantedShaped},
			"Www-Authenticate":                   {`Bearer realm="x", token="` + plantedAccess + `"`},
			"Request-Id":                         {"req_" + plantedAPIKey},
			"Authorization":                      {"Bearer " + plantedShaped},
			"Set-Cookie":                         {"session=" + plantedRefresh},
		}}
}

func assertNoPlanted(t *testing.T, where, text string) {
	t.Helper()
	for _, tok := range planted {
		assert.NotContains(t, text, tok, "%s leaks a planted token", where)
	}
}

func echoHost(t *testing.T, logs *syncBuffer, known func(context.Context) []secret.Secret) *Host {
	t.Helper()
	h, err := NewHost(context.Background(), Options{
		Manifests:    []Manifest{fixture(t, "echo")},
		CacheDir:     testCacheDir,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KnownSecrets: known,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, h.Close(context.Background())) })
	return h
}

// TestSecretsNeverCrossThePluginBoundary plants tokens in the body, the
// headers and the message, runs a guest that logs and echoes its whole
// input and emits a known token of its own, and greps the logs, the
// verdicts, the fault messages and the plugins/list status for every
// token.
func TestSecretsNeverCrossThePluginBoundary(t *testing.T) {
	logs := &syncBuffer{}
	h := echoHost(t, logs, knownPlanted)
	ctx := context.Background()

	// An answer: the reason quotes the guest's token and its input.
	v := h.Classify(ctx, plantedFailure(429))
	require.Equal(t, "plugin:echo", v.DecidedBy)
	assertNoPlanted(t, "the reason", v.Reason)
	assert.True(t, strings.HasPrefix(v.Reason, "[redacted] 'headers':{'anthropic-ratelimit-unified-status':'rejected [redacted]','retry-after':'7','x-should-retry':'true [redacted]'}"),
		"reason %q", v.Reason)

	// What was written into guest memory: the input itself is redacted,
	// before any output-side redaction could hide a leak.
	p := h.cur.Load().entries[0].p
	in := <-p.idle
	written := string(in.input)
	p.idle <- in
	assertNoPlanted(t, "the input written to the guest", written)
	assert.Contains(t, written, visibleBodyMark)
	assert.Contains(t, written, `"message":"upstream said [redacted]"`)
	assert.Contains(t, written, `"headers":{"anthropic-ratelimit-unified-status":"rejected [redacted]","retry-after":"7","x-should-retry":"true [redacted]"}`)

	// A trap: the stdout tail (the echoed input and the token) is quoted
	// in the fault message and lastError.
	f := plantedFailure(500)
	v = h.Classify(ctx, f)
	assert.Equal(t, verdict.ClassifyBuiltin(f), v)
	s := statusOf(t, h, "echo")
	require.Equal(t, map[FaultKind]int64{FaultTrap: 1}, s.Faults)
	assert.Contains(t, s.LastError, "(guest output: ")
	assert.Contains(t, s.LastError, "[redacted]")
	assertNoPlanted(t, "lastError", s.LastError)

	status, err := json.Marshal(h.Status())
	require.NoError(t, err)
	assertNoPlanted(t, "plugins/list", string(status))

	out := logs.String()
	assertNoPlanted(t, "the logs", out)
	// The guest did log its input: the visible part is there, dropped
	// headers are not, and the known token it printed was replaced.
	assert.Contains(t, out, visibleBodyMark)
	assert.Contains(t, out, `retry-after`)
	for _, dropped := range []string{"www-authenticate", "request-id", "authorization", "set-cookie"} {
		assert.NotContains(t, strings.ToLower(out), dropped, "header %s reached the guest", dropped)
	}
	assert.Contains(t, out, "line=[redacted]", "the guest's own token line")
}

// TestPluginOutputRedactedWithKnownSecrets is the control of the test
// above: without the known-secrets set, the token the guest carries
// itself reaches the logs and the reason (it has no credential shape),
// so it is Options.KnownSecrets that removes it there. The input tokens
// with a credential shape stay out either way.
func TestPluginOutputRedactedWithKnownSecrets(t *testing.T) {
	logs := &syncBuffer{}
	h := echoHost(t, logs, nil)
	v := h.Classify(context.Background(), plantedFailure(429))
	require.Equal(t, "plugin:echo", v.DecidedBy)
	assert.Contains(t, v.Reason, echoHardcoded)
	assert.Contains(t, logs.String(), echoHardcoded)
	for _, tok := range []string{plantedShaped, plantedJWT} {
		assert.NotContains(t, logs.String(), tok)
		assert.NotContains(t, v.Reason, tok)
	}
}
