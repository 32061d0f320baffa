package core

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
)

// OAuth client constants of BEHAVIOUR.md §2.1 and §3.1.
const (
	oauthClientID   = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
	refreshScope    = "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload"
	loginScope      = "org:create_api_key " + refreshScope
	tokenUserAgent  = "axios/1.15.2"
	usageUserAgent  = "claude-code/2.1.257"
	usageBeta       = "oauth-2025-04-20"
	maxBodyExcerpt  = 4 << 10
	maxBodyRead     = 1 << 20
	tokenAttempts   = 3
	tokenRetryDelay = 500 * time.Millisecond
)

// upstreamReply is a completed HTTP exchange with a bounded body.
type upstreamReply struct {
	status int
	header http.Header
	body   []byte
}

// send performs one request and reads at most maxBodyRead bytes of the
// body. A transport failure returns a Network failure.
func (e *Engine) send(ctx context.Context, req *http.Request) (*upstreamReply, error) {
	resp, err := e.http.Do(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	if err != nil {
		return nil, err
	}
	return &upstreamReply{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// failureOf builds the classifier input for a failed exchange. The message
// is the redacted body excerpt; known are secrets the request carried.
func (e *Engine) failureOf(src verdict.Source, r *upstreamReply, netErr error, known ...secret.Secret) verdict.Failure {
	f := verdict.Failure{Source: src, At: e.now()}
	// The host's own tokens are scrubbed from every message too, whichever
	// account the failure belongs to.
	if c, ok := e.mainCredentials(); ok {
		known = append(known, c.Access, c.Refresh)
	}
	if r == nil {
		f.Network = true
		msg := "network error"
		if netErr != nil {
			msg = netErr.Error()
		}
		f.Message = secret.Redact(msg, known...)
		return f
	}
	f.Status, f.Header = r.status, r.header
	f.Body = r.body
	if len(f.Body) > maxBodyExcerpt {
		f.Body = f.Body[:maxBodyExcerpt]
	}
	f.Message = secret.Redact(string(bytes.TrimSpace(f.Body)), known...)
	return f
}

// tokenGrant is a successful token endpoint response.
type tokenGrant struct {
	AccessToken  string  `json:"access_token"`
	RefreshToken string  `json:"refresh_token"`
	ExpiresIn    float64 `json:"expires_in"`
}

// postToken calls the token endpoint with body, retrying network errors
// and 5xx up to three attempts (500 ms, then 1000 ms apart, on the clock).
// It returns the grant, or the failure of the last attempt.
func (e *Engine) postToken(ctx context.Context, body map[string]string, known ...secret.Secret) (*tokenGrant, *verdict.Failure, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	var last verdict.Failure
	for attempt := 1; attempt <= tokenAttempts; attempt++ {
		if attempt > 1 {
			if err := e.clock.Sleep(ctx, tokenRetryDelay<<(attempt-2)); err != nil {
				return nil, nil, err
			}
		}
		req, err := http.NewRequest(http.MethodPost, e.ep.Token, bytes.NewReader(payload))
		if err != nil {
			return nil, nil, fmt.Errorf("token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/plain, */*")
		req.Header.Set("User-Agent", tokenUserAgent)
		reply, err := e.send(ctx, req)
		if err != nil && ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if err == nil && reply.status >= 200 && reply.status < 300 {
			var g tokenGrant
			if jerr := json.Unmarshal(reply.body, &g); jerr != nil || g.AccessToken == "" {
				last = verdict.Failure{Source: verdict.SourceToken, Status: reply.status, At: e.now(), Message: "token response without access_token"}
				return nil, &last, nil
			}
			return &g, nil, nil
		}
		last = e.failureOf(verdict.SourceToken, reply, err, known...)
		// Only transient failures (5xx, network) are retried inside the
		// call (BEHAVIOUR.md §2.2); the classifier says which those are.
		if verdict.ClassifyBuiltin(last).Class != verdict.ClassTransient {
			break
		}
		e.log.Debug("token endpoint attempt failed", "attempt", attempt, "status", last.Status, "network", last.Network)
	}
	return nil, &last, nil
}

// upstreamError builds the error returned for a classified failure.
func upstreamError(account string, f verdict.Failure, v verdict.Verdict, until time.Time) *UpstreamError {
	return &UpstreamError{Account: account, Failure: f, Verdict: v, Until: until}
}

// isCanceled reports whether err is a context cancellation or deadline.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
