package anthropic

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// testClient is a client of srv whose Sleep records the waits instead of
// waiting.
func testClient(srv *httptest.Server, slept *[]time.Duration) *Client {
	return &Client{
		HTTP: srv.Client(), TokenURL: srv.URL + "/token", UsageURL: srv.URL + "/usage", ProfileURL: srv.URL + "/profile",
		Now: func() time.Time { return testNow },
		Sleep: func(_ context.Context, d time.Duration) error {
			*slept = append(*slept, d)
			return nil
		},
		Log:         slog.New(slog.DiscardHandler),
		HostSecrets: func() []secret.Secret { return []secret.Secret{"host-main-access-token"} },
	}
}

func TestRefresh_retriesTransientOnly(t *testing.T) {
	cases := []struct {
		name     string
		statuses []int // one per attempt; the last is repeated
		attempts int
		wantOK   bool
		slept    []time.Duration
	}{
		{"503 twice then success", []int{503, 503, 200}, 3, true, []time.Duration{500 * time.Millisecond, time.Second}},
		{"5xx every time", []int{500}, TokenAttempts, false, []time.Duration{500 * time.Millisecond, time.Second}},
		{"400 is not retried", []int{400}, 1, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				var body map[string]string
				b, _ := io.ReadAll(r.Body)
				require.NoError(t, json.Unmarshal(b, &body))
				assert.Equal(t, "refresh_token", body["grant_type"])
				assert.Equal(t, "rt-1", body["refresh_token"])
				assert.Equal(t, ClientID, body["client_id"])
				assert.Equal(t, RefreshScope, body["scope"])
				status := tc.statuses[min(n, len(tc.statuses))-1]
				w.WriteHeader(status)
				if status == 200 {
					_, _ = w.Write([]byte(`{"access_token":"at-2","refresh_token":"rt-2","expires_in":3600}`))
					return
				}
				_, _ = w.Write([]byte(`{"error":"x","echo":"rt-1 host-main-access-token"}`))
			}))
			defer srv.Close()
			var slept []time.Duration
			g, f, err := testClient(srv, &slept).Refresh(context.Background(), "rt-1")
			require.NoError(t, err)
			assert.EqualValues(t, tc.attempts, calls.Load())
			assert.Equal(t, tc.slept, slept)
			if tc.wantOK {
				require.Nil(t, f)
				assert.Equal(t, Grant{AccessToken: "at-2", RefreshToken: "rt-2", ExpiresIn: 3600}, *g)
				return
			}
			require.NotNil(t, f)
			assert.Equal(t, verdict.SourceToken, f.Source)
			assert.NotContains(t, f.Message, "rt-1", "the refresh token sent is scrubbed")
			assert.NotContains(t, f.Message, "host-main-access-token", "the host's tokens are scrubbed")
		})
	}
}

func TestFailure_networkAndBodyExcerpt(t *testing.T) {
	c := &Client{Now: func() time.Time { return testNow }, HostSecrets: func() []secret.Secret { return nil }}
	f := c.Failure(verdict.SourceUsage, nil, io.ErrUnexpectedEOF, "tok-123456")
	assert.True(t, f.Network)
	assert.Equal(t, testNow, f.At)
	assert.Equal(t, io.ErrUnexpectedEOF.Error(), f.Message)

	big := make([]byte, MaxBodyExcerpt+100)
	for i := range big {
		big[i] = 'a'
	}
	f = c.Failure(verdict.SourceUsage, &Reply{Status: 429, Body: big}, nil)
	assert.Equal(t, 429, f.Status)
	assert.Len(t, f.Body, MaxBodyExcerpt)
}

func TestAuthorizeURL_pkce(t *testing.T) {
	u, err := url.Parse(AuthorizeURL("https://auth.example/authorize", "https://cb.example/", "verifier-1", "state-1"))
	require.NoError(t, err)
	q := u.Query()
	sum := sha256.Sum256([]byte("verifier-1"))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), q.Get("code_challenge"))
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, "state-1", q.Get("state"))
	assert.Equal(t, ClientID, q.Get("client_id"))
	assert.Equal(t, loginScope, q.Get("scope"))
	assert.Empty(t, q.Get("code_verifier"), "the verifier itself never leaves")
}

func TestProfile(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		body    string
		want    *Profile
		wantErr string
	}{
		{"complete", 200, `{"account":{"uuid":"u-1"},"organization":{"rate_limit_tier":"max","organization_type":"claude_max"}}`,
			&Profile{AccountUUID: "u-1", Tier: "max", OrgType: "claude_max"}, ""},
		{"missing tier", 200, `{"account":{"uuid":"u-1"},"organization":{"organization_type":"claude_max"}}`, nil, "profile response: missing account metadata"},
		{"status", 500, `oops`, nil, "profile request: status 500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				assert.Equal(t, "Bearer at-1", r.Header.Get("Authorization"))
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			var slept []time.Duration
			p, err := testClient(srv, &slept).Profile(context.Background(), "at-1")
			if tc.wantErr != "" {
				assert.EqualError(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, p)
		})
	}
}
