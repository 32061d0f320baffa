package anthropic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
)

// OAuth client constants of BEHAVIOUR.md §2.1 and §3.1.
const (
	// ClientID is the OAuth client id upstream uses.
	ClientID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
	// RefreshScope is the scope a token refresh asks for.
	RefreshScope = "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload"
	// loginScope is the scope a login asks for.
	loginScope = "org:create_api_key " + RefreshScope
	// MaxBodyExcerpt is the most of a failed response's body kept in a
	// Failure (and so in a classifier's input and an error message).
	MaxBodyExcerpt = 4 << 10

	// TokenAttempts is how many times one token call is tried when it
	// fails transiently (5xx, network), BEHAVIOUR.md §2.2.
	TokenAttempts = 3

	tokenUserAgent  = "axios/1.15.2"
	usageUserAgent  = "claude-code/2.1.257"
	usageBeta       = "oauth-2025-04-20"
	maxBodyRead     = 1 << 20
	tokenRetryDelay = 500 * time.Millisecond
)

// Doer sends HTTP requests; *http.Client implements it.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Client calls the endpoints. Every field must be set.
type Client struct {
	HTTP Doer
	// TokenURL, UsageURL and ProfileURL are the endpoints' addresses.
	TokenURL, UsageURL, ProfileURL string
	// Now and Sleep are the engine's clock: the token call's in-call
	// retries wait through Sleep, so a manual clock advances instead.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	// HostSecrets returns the host's own tokens; they are scrubbed from
	// every failure message, whichever account the failure belongs to.
	HostSecrets func() []secret.Secret
}

// Reply is a completed HTTP exchange with a bounded body.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// OK reports whether the status is 2xx.
func (r *Reply) OK() bool { return r.Status >= 200 && r.Status <= 299 }

// send performs one request and reads at most maxBodyRead bytes of the
// body. A transport failure is returned as the error.
func (c *Client) send(ctx context.Context, req *http.Request) (*Reply, error) {
	resp, err := c.HTTP.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	if err != nil {
		return nil, err
	}
	return &Reply{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Failure builds the classifier input for a failed exchange: r is nil when
// no response arrived (then netErr says why). The message is the redacted
// body excerpt; known are secrets the request carried.
func (c *Client) Failure(src verdict.Source, r *Reply, netErr error, known ...secret.Secret) verdict.Failure {
	f := verdict.Failure{Source: src, At: c.Now()}
	known = append(known, c.HostSecrets()...)
	if r == nil {
		f.Network = true
		msg := "network error"
		if netErr != nil {
			msg = netErr.Error()
		}
		f.Message = secret.Redact(msg, known...)
		return f
	}
	f.Status, f.Header = r.Status, r.Header
	f.Body = r.Body
	if len(f.Body) > MaxBodyExcerpt {
		f.Body = f.Body[:MaxBodyExcerpt]
	}
	f.Message = secret.Redact(string(bytes.TrimSpace(f.Body)), known...)
	return f
}

// Grant is a successful token endpoint response.
type Grant struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	ExpiresIn    float64 `json:"expires_in"`
}

// Refresh trades a refresh token for new tokens. known are further
// secrets to scrub from a failure (the access token it replaces).
func (c *Client) Refresh(ctx context.Context, refresh secret.Secret, known ...secret.Secret) (*Grant, *verdict.Failure, error) {
	return c.postToken(ctx, map[string]string{
		"grant_type":    "refresh_token",
		"refresh_token": refresh.Reveal(),
		"client_id":     ClientID,
		"scope":         RefreshScope,
	}, append(known, refresh)...)
}

// Exchange trades a login's authorization code for tokens (PKCE: verifier
// is the secret whose hash went into [AuthorizeURL]).
func (c *Client) Exchange(ctx context.Context, code, state, redirect, verifier string) (*Grant, *verdict.Failure, error) {
	return c.postToken(ctx, map[string]string{
		"code":          code,
		"state":         state,
		"grant_type":    "authorization_code",
		"client_id":     ClientID,
		"redirect_uri":  redirect,
		"code_verifier": verifier,
	}, secret.Secret(code), secret.Secret(verifier))
}

// AuthorizeURL is the address a login opens: authorize with the PKCE
// challenge of verifier and state.
func AuthorizeURL(authorize, redirect, verifier, state string) string {
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"code":                  {"true"},
		"client_id":             {ClientID},
		"response_type":         {"code"},
		"redirect_uri":          {redirect},
		"scope":                 {loginScope},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"state":                 {state},
	}
	return authorize + "?" + q.Encode()
}

// postToken calls the token endpoint with body, retrying network errors
// and 5xx up to three attempts (500 ms, then 1000 ms apart, on the clock).
// It returns the grant, or the failure of the last attempt.
func (c *Client) postToken(ctx context.Context, body map[string]string, known ...secret.Secret) (*Grant, *verdict.Failure, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	var last verdict.Failure
	for attempt := 1; attempt <= TokenAttempts; attempt++ {
		if attempt > 1 {
			if err := c.Sleep(ctx, tokenRetryDelay<<(attempt-2)); err != nil {
				return nil, nil, err
			}
		}
		req, err := http.NewRequest(http.MethodPost, c.TokenURL, bytes.NewReader(payload))
		if err != nil {
			return nil, nil, fmt.Errorf("token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/plain, */*")
		req.Header.Set("User-Agent", tokenUserAgent)
		reply, err := c.send(ctx, req)
		if err != nil && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if err == nil && reply.OK() {
			var g Grant
			if jerr := json.Unmarshal(reply.Body, &g); jerr != nil || g.AccessToken == "" {
				last = verdict.Failure{Source: verdict.SourceToken, Status: reply.Status, At: c.Now(), Message: "token response without access_token"}
				return nil, &last, nil
			}
			return &g, nil, nil
		}
		last = c.Failure(verdict.SourceToken, reply, err, known...)
		// Only transient failures (5xx, network) are retried inside the
		// call (BEHAVIOUR.md §2.2); the classifier says which those are.
		if verdict.ClassifyBuiltin(last).Class != verdict.ClassTransient {
			break
		}
		c.Log.Debug("token endpoint attempt failed", "attempt", attempt, "status", last.Status, "network", last.Network)
	}
	return nil, &last, nil
}

// Usage calls the usage endpoint with access. A transport failure is the
// error; any reply, 2xx or not, is returned for the caller to parse
// ([ParseUsage]) or classify ([Client.Failure]).
func (c *Client) Usage(ctx context.Context, access secret.Secret) (*Reply, error) {
	req, err := http.NewRequest(http.MethodGet, c.UsageURL, nil)
	if err != nil {
		return nil, fmt.Errorf("usage request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+access.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("anthropic-beta", usageBeta)
	req.Header.Set("User-Agent", usageUserAgent)
	return c.send(ctx, req)
}

// Profile is what the profile endpoint says about an access token's
// account.
type Profile struct {
	AccountUUID string
	Tier        string // organization.rate_limit_tier
	OrgType     string // organization.organization_type
}

// profilePayload is the part of the profile endpoint's answer we read.
type profilePayload struct {
	Account *struct {
		UUID string `json:"uuid"`
	} `json:"account"`
	Organization *struct {
		RateLimitTier    string `json:"rate_limit_tier"`
		OrganizationType string `json:"organization_type"`
	} `json:"organization"`
}

// Profile asks the profile endpoint which account access belongs to. Any
// failure, including an answer without the account's UUID, tier or
// organisation type, is an error (redacted).
func (c *Client) Profile(ctx context.Context, access secret.Secret) (*Profile, error) {
	req, err := http.NewRequest(http.MethodGet, c.ProfileURL, nil)
	if err != nil {
		return nil, fmt.Errorf("profile request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+access.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("anthropic-beta", usageBeta)
	req.Header.Set("User-Agent", usageUserAgent)
	reply, err := c.send(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("profile request: %s", secret.Redact(err.Error()))
	}
	if !reply.OK() {
		return nil, fmt.Errorf("profile request: status %d", reply.Status)
	}
	var p profilePayload
	if err := record.DecodeLenient(reply.Body, &p); err != nil {
		return nil, fmt.Errorf("profile response: %s", record.JSONErrorText(err))
	}
	if p.Account == nil || p.Account.UUID == "" || p.Organization == nil ||
		p.Organization.RateLimitTier == "" || p.Organization.OrganizationType == "" {
		return nil, fmt.Errorf("profile response: missing account metadata")
	}
	return &Profile{AccountUUID: p.Account.UUID, Tier: p.Organization.RateLimitTier, OrgType: p.Organization.OrganizationType}, nil
}
