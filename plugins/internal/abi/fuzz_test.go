package abi

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// FuzzDecodeOutput: whatever a guest returns, DecodeOutput never panics,
// and an accepted output has a known class, a retry-after within
// 0..MaxRetryAfter (never a wrapped-around value) and a reason within
// MaxReason. Seeds: testdata/fuzz/FuzzDecodeOutput.
func FuzzDecodeOutput(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := DecodeOutput(raw)
		if err != nil {
			if !errors.Is(err, ErrOutput) {
				t.Fatalf("error %v does not wrap ErrOutput", err)
			}
			return
		}
		if !out.Class.Valid() {
			t.Fatalf("accepted class %q", out.Class)
		}
		if out.RetryAfter != nil && (*out.RetryAfter < 0 || *out.RetryAfter > MaxRetryAfter) {
			t.Fatalf("accepted retryAfter %v outside 0..%v", *out.RetryAfter, MaxRetryAfter)
		}
		if len(out.Reason) > MaxReason {
			t.Fatalf("reason of %d bytes kept", len(out.Reason))
		}
		// The retry-after is what the guest wrote, not a wrapped value.
		var w struct {
			RetryAfterMs *int64 `json:"retryAfterMs"`
		}
		if json.Unmarshal(raw, &w) == nil && w.RetryAfterMs != nil && out.RetryAfter != nil &&
			out.RetryAfter.Milliseconds() != *w.RetryAfterMs {
			t.Fatalf("retryAfterMs %d became %v", *w.RetryAfterMs, *out.RetryAfter)
		}
	})
}

// FuzzNewInput: whatever the failure holds, the input JSON is valid, fits
// the caps, and never contains a known secret or a header off the
// allow-list. Seeds: testdata/fuzz/FuzzNewInput.
func FuzzNewInput(f *testing.F) {
	f.Fuzz(func(t *testing.T, body, message, header, value, planted string, bodyMax int) {
		// Tokens are drawn from the token alphabet; the prefix keeps the planted
		// secret from being a piece of the "[redacted]" mark itself.
		planted = "plainFUZZsecret-" + strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return -1
		}, planted)
		fl := verdict.Failure{Source: verdict.SourceToken, Status: 400,
			Body:    []byte(body + planted + body),
			Message: message + planted,
			Header:  http.Header{header: {value + planted}, "Retry-After": {planted}, "Www-Authenticate": {value}}}
		in := NewInput(fl, verdict.Verdict{Class: verdict.ClassTransient, Reason: planted}, []secret.Secret{secret.Secret(planted)})
		raw := in.Append(nil, bodyMax)
		var decoded struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
			Message string            `json:"message"`
		}
		if err := json.Unmarshal(raw, &decoded); err != nil {
			t.Fatalf("input is not valid JSON: %v\n%s", err, raw)
		}
		if strings.Contains(string(raw), planted) || strings.Contains(decoded.Body, planted) ||
			strings.Contains(decoded.Message, planted) {
			t.Fatalf("known secret %q reached the guest: %s", planted, raw)
		}
		for name, v := range decoded.Headers {
			if !headerAllowed(name) {
				t.Fatalf("header %q is not on the allow-list", name)
			}
			if strings.Contains(v, planted) || len(v) > MaxHeaderValue {
				t.Fatalf("header %q value %q", name, v)
			}
		}
		if len(decoded.Body) > MaxBody || len(decoded.Message) > MaxMessage {
			t.Fatalf("body %d / message %d bytes over the caps", len(decoded.Body), len(decoded.Message))
		}
	})
}
