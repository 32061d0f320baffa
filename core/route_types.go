package core

import (
	"fmt"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// SelectRequest asks which account should serve the next model request.
type SelectRequest struct {
	// SessionID enables sticky-balanced affinity; it is stored only hashed.
	SessionID string `json:"sessionId,omitempty"`
	// Model is the model id of the request, for model-scoped quota.
	Model string `json:"model,omitempty"`
	// PromptBytes is the request body size, for the sticky allocator.
	PromptBytes int64 `json:"promptBytes,omitempty"`
	// Exclude lists account ids not to use (already tried).
	Exclude []string `json:"exclude,omitempty"`
	// Streamed is true when the request body is a stream that cannot be
	// sent twice. Such a request is never moved to another account, so it
	// goes to main only (upstream routes only replayable requests through
	// fallbacks) and never takes part in sticky-balanced routing.
	Streamed bool `json:"streamed,omitempty"`
}

// Credential is what the host puts on the upstream request.
type Credential struct {
	// Type is "bearer" (Authorization: Bearer) or "x-api-key".
	Type  string        `json:"type"`
	Token secret.Secret `json:"token"`
	// BaseURL is set for API-key routes: send to <BaseURL>/v1/messages.
	BaseURL string `json:"baseURL,omitempty"`
}

// Route is the account chosen to serve a request, with its credential.
type Route struct {
	AccountID string `json:"accountId"`
	Label     string `json:"label,omitempty"`
	// Kind is derived from the snapshot by id; an echoed kind is ignored.
	Kind       RouteKind  `json:"kind"`
	Credential Credential `json:"credential"`
	Reason     string     `json:"reason"`
	SessionID  string     `json:"sessionId,omitempty"`
	Model      string     `json:"model,omitempty"`
	// PromptBytes is the request size given to Select, kept so that a
	// sticky migration after a failure can allocate the session again.
	PromptBytes int64       `json:"promptBytes,omitempty"`
	Attempted   []string    `json:"attempted,omitempty"`
	Sticky      *StickyInfo `json:"sticky,omitempty"`
	// AuthRetried is set on the route that re-sends a request after a 401
	// and a token refresh, so a second 401 moves on instead of looping.
	AuthRetried bool `json:"authRetried,omitempty"`
	// Ticket names the server's record of this route. route/report with a
	// known ticket reads the account, the credential, the tried accounts,
	// authRetried and stickiness from that record, not from the echo.
	Ticket string `json:"ticket,omitempty"`
}

// StickyInfo says how a sticky-balanced route was found.
type StickyInfo struct {
	Created  bool `json:"created"`
	Migrated bool `json:"migrated"`
}

// AccountReason says why one account is not routable and until when.
type AccountReason struct {
	AccountID string `json:"accountId"`
	Reason    string `json:"reason"`
	// Until is epoch ms; 0 when the reason has no known end.
	Until int64 `json:"until,omitempty"`
}

// NoRoute explains why no account can serve a request: for every account
// the reason and its end, the retry-after, and the synthetic upstream error
// a host should return (401 authentication_error or 429 rate_limit_error
// with upstream's message).
type NoRoute struct {
	Status       int             `json:"status"`
	ErrorType    string          `json:"errorType"`
	Message      string          `json:"message"`
	RetryAfterMs int64           `json:"retryAfterMs,omitempty"`
	Accounts     []AccountReason `json:"accounts"`
}

// NoRouteError is the error form of a NoRoute; it matches ErrNoRoute, and
// its Cause (a main token refresh failure, say) when there is one.
type NoRouteError struct {
	NoRoute NoRoute
	// Cause is the failure behind the NoRoute, if one failure explains it.
	Cause error
}

// Error implements error.
func (e *NoRouteError) Error() string {
	return fmt.Sprintf("no account available: %s", e.NoRoute.Message)
}

// Unwrap matches ErrNoRoute and the cause.
func (e *NoRouteError) Unwrap() []error {
	if e.Cause != nil {
		return []error{ErrNoRoute, e.Cause}
	}
	return []error{ErrNoRoute}
}

// ReportRequest says what the upstream response to a routed request was.
type ReportRequest struct {
	Route Route `json:"route"`
	// Status is the HTTP status; 0 with Network for a transport failure.
	Status  int               `json:"status"`
	Network bool              `json:"network,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is an excerpt of the response body (for classification).
	Body string `json:"body,omitempty"`
	// StreamRateLimit is true when a 200 stream opened with rate_limit_error.
	StreamRateLimit bool `json:"streamRateLimit,omitempty"`
	// Replayable is true when the request body can be sent again.
	Replayable bool `json:"replayable"`
}

// Report actions.
const (
	ActionReturn = "return" // hand the response to the caller
	ActionRetry  = "retry"  // send again on Next
	ActionHold   = "hold"   // return a 429 with RetryAfterMs
)

// ReportResult is the verdict on a response and what to do next.
type ReportResult struct {
	Verdict      *verdict.Verdict `json:"verdict,omitempty"`
	Action       string           `json:"action"`
	Next         *Route           `json:"next,omitempty"`
	RetryAfterMs int64            `json:"retryAfterMs,omitempty"`
	NoRoute      *NoRoute         `json:"noRoute,omitempty"`
	// Reason says why this action was chosen.
	Reason string `json:"reason,omitempty"`
}
