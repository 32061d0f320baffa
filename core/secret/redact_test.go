package secret

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRedact(t *testing.T) {
	cases := []struct {
		name, in string
		gone     []string
		keep     []string
	}{
		{"bearer header", "Authorization: Bearer abc.def-123", []string{"abc.def-123"}, []string{"Authorization: Bearer [redacted]"}},
		{"anthropic token", "token sk-ant-oat01-AbC_123-xyz leaked", []string{"sk-ant-oat01-AbC_123-xyz"}, []string{"token [redacted] leaked"}},
		{"jwt", "id eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_nature here", []string{"eyJhbGciOiJIUzI1NiJ9"}, []string{"here"}},
		{"json token fields", `{"access_token":"opaque1","refresh_token":"opaque2","error":"invalid_grant"}`, []string{"opaque1", "opaque2"}, []string{`"error":"invalid_grant"`}},
		{"form field", "refresh_token=opaque3&grant_type=refresh_token", []string{"opaque3"}, []string{"grant_type=refresh_token"}},
		{"plain text survives", "Forbidden", nil, []string{"Forbidden"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := Redact(tc.in)
			for _, g := range tc.gone {
				assert.NotContains(t, out, g)
			}
			for _, k := range tc.keep {
				assert.Contains(t, out, k)
			}
		})
	}
	t.Run("known secrets without a shape", func(t *testing.T) {
		assert.Equal(t, "x [redacted] y", Redact("x opaque-token-value y", Secret("opaque-token-value")))
	})
}

func TestSecret_neverFormatted(t *testing.T) {
	s := Secret("sk-ant-ort01-SECRETVALUE")
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("x", "token", s)
	out := fmt.Sprintf("%v %s %+v %#v %q", s, s, struct{ T Secret }{s}, s, s) + buf.String()
	assert.NotContains(t, out, "SECRETVALUE")
	assert.Equal(t, "sk-ant-ort01-SECRETVALUE", s.Reveal())
	assert.Len(t, s.Fingerprint(), 16)
}

// TestRedact_urlUserinfo: a URL's user information is a credential; the
// scheme and host stay readable.
func TestRedact_urlUserinfo(t *testing.T) {
	cases := []struct{ in, want string }{
		{"https://user:PLAINPASS@proxy.example/v1", "https://[redacted]@proxy.example/v1"},
		{`baseURL "http://PLAINPASS@10.0.0.1:8080"`, `baseURL "http://[redacted]@10.0.0.1:8080"`},
		{"https://proxy.example/v1?x=a@b", "https://proxy.example/v1?x=a@b"},
		{"mail me at a@b.example", "mail me at a@b.example"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Redact(c.in), c.in)
		assert.NotContains(t, Redact(c.in), "PLAINPASS")
	}
}
