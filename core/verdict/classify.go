package verdict

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/millis"
	json "github.com/goccy/go-json"
)

// Source says which upstream endpoint a failure came from. The same status
// means different things at different endpoints (a 403 from the token
// endpoint is a refresh failure, from the usage endpoint an org policy), so
// every decision is keyed by source first.
type Source string

// The upstream endpoints acctpool talks to.
const (
	SourceToken    Source = "token"
	SourceUsage    Source = "usage"
	SourceMessages Source = "messages"
)

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool {
	return s == SourceToken || s == SourceUsage || s == SourceMessages
}

// Class is the kind of a failure, the first half of a [Verdict].
type Class string

// The failure classes of BEHAVIOUR.md §4.1.
const (
	ClassAuthExpired  Class = "auth_expired"
	ClassOrgPolicy    Class = "org_policy"
	ClassInvalidGrant Class = "invalid_grant"
	ClassRateLimited  Class = "rate_limited"
	ClassTransient    Class = "transient"
	ClassClientError  Class = "client_error"
)

// classes lists every class in a stable order, for validation and docs.
var classes = []Class{ClassAuthExpired, ClassOrgPolicy, ClassInvalidGrant, ClassRateLimited, ClassTransient, ClassClientError}

// Valid reports whether c is one of the known classes.
func (c Class) Valid() bool {
	for _, k := range classes {
		if c == k {
			return true
		}
	}
	return false
}

// Failure is one failed upstream call, the input of a [Classifier].
type Failure struct {
	// Source is the endpoint that failed.
	Source Source `json:"source"`
	// Status is the HTTP status, or 0 when no response arrived.
	Status int `json:"status"`
	// Network is true when the call failed below HTTP (refused, reset,
	// timed out). A zero Status without Network is a local failure such as
	// "retries exhausted".
	Network bool `json:"network,omitempty"`
	// Header holds the response headers, if any.
	Header http.Header `json:"-"`
	// Body is the response body, possibly truncated.
	Body []byte `json:"-"`
	// Message is a human-readable description, already redacted.
	Message string `json:"message,omitempty"`
	// StreamRateLimit is true when a 200 streamed response opened with a
	// rate_limit_error event.
	StreamRateLimit bool `json:"streamRateLimit,omitempty"`
	// At is when the failure was observed; it anchors a Retry-After date.
	At time.Time `json:"-"`
}

// Verdict is what a classifier decides about a [Failure].
type Verdict struct {
	Class Class `json:"class"`
	// RetryAfter is how long upstream asked us to wait, 0 if it did not.
	RetryAfter time.Duration `json:"-"`
	// Reason is a short human-readable explanation.
	Reason string `json:"reason"`
	// DecidedBy is "builtin" or "plugin:<id>".
	DecidedBy string `json:"decidedBy"`
}

// RetryAfterMs returns RetryAfter in milliseconds, the unit of the wire.
func (v Verdict) RetryAfterMs() int64 { return v.RetryAfter.Milliseconds() }

// Classifier turns a failure into a verdict. The built-in table is one
// implementation; the plugin chain is another that consults WebAssembly
// modules and falls back to the built-in verdict on any fault.
type Classifier interface {
	Classify(ctx context.Context, f Failure) Verdict
}

// classifierFunc adapts a function to [Classifier].
type classifierFunc func(ctx context.Context, f Failure) Verdict

// Classify implements Classifier.
func (fn classifierFunc) Classify(ctx context.Context, f Failure) Verdict { return fn(ctx, f) }

// Builtin is the built-in [Classifier]; it wraps [ClassifyBuiltin].
var Builtin Classifier = classifierFunc(func(_ context.Context, f Failure) Verdict { return ClassifyBuiltin(f) })

// decidedByBuiltin is the DecidedBy value of built-in verdicts.
const decidedByBuiltin = "builtin"

var invalidGrant = []byte("invalid_grant")

// ClassifyBuiltin is the built-in classification: a pure function of the
// failure, documented as the table in README.md and BEHAVIOUR.md §4.1.
//
//	status 400 with "invalid_grant" (token endpoint only)  invalid_grant
//	401                                                    auth_expired
//	403                                                    org_policy
//	429, or a streamed rate_limit_error                    rate_limited
//	5xx, or a network failure                              transient
//	anything else                                          client_error
func ClassifyBuiltin(f Failure) Verdict {
	v := Verdict{DecidedBy: decidedByBuiltin}
	switch {
	case f.StreamRateLimit:
		v.Class, v.Reason = ClassRateLimited, "stream opened with rate_limit_error"
	case f.Status == 0 && f.Network:
		v.Class, v.Reason = ClassTransient, "network error"
	case f.Status == 0:
		v.Class, v.Reason = ClassClientError, "local failure"
	case f.Status == http.StatusBadRequest && f.Source == SourceToken &&
		(bytes.Contains(f.Body, invalidGrant) || strings.Contains(f.Message, "invalid_grant")):
		v.Class, v.Reason = ClassInvalidGrant, "refresh token rejected (invalid_grant)"
	case f.Status == http.StatusUnauthorized:
		v.Class, v.Reason = ClassAuthExpired, "401 unauthorized"
	case f.Status == http.StatusForbidden:
		v.Class, v.Reason = ClassOrgPolicy, "403 forbidden"
	case f.Status == http.StatusTooManyRequests:
		v.Class, v.Reason = ClassRateLimited, "429 rate limited"
	case f.Status >= 500:
		v.Class, v.Reason = ClassTransient, strconv.Itoa(f.Status)+" server error"
	default:
		v.Class, v.Reason = ClassClientError, strconv.Itoa(f.Status)+" client error"
	}
	if f.Header != nil {
		v.RetryAfter = parseRetryAfter(f.Header.Get("Retry-After"), f.At)
	}
	return v
}

// maxRetryAfter is the longest Retry-After taken: about 31 years. Longer
// ones are ignored.
const maxRetryAfter = 1e9 * time.Second

// parseRetryAfter reads a Retry-After value: positive seconds, or an HTTP
// date after now. Anything else, including a past date, gives 0.
func parseRetryAfter(value string, now time.Time) time.Duration {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(value, 64); err == nil {
		if secs <= 0 || secs > maxRetryAfter.Seconds() {
			return 0
		}
		return time.Duration(math.Ceil(secs)) * time.Second
	}
	t, err := http.ParseTime(value)
	if err != nil || now.IsZero() || !t.After(now) {
		return 0
	}
	// Round up to whole seconds as upstream does. A date further off than
	// the seconds form allows is ignored like such a seconds value (and
	// would overflow the rounding).
	d := t.Sub(now)
	if d > maxRetryAfter {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

type verdictWire struct {
	Class        Class  `json:"class"`
	RetryAfterMs int64  `json:"retryAfterMs,omitempty"`
	Reason       string `json:"reason"`
	DecidedBy    string `json:"decidedBy"`
}

// MarshalJSON writes RetryAfter as retryAfterMs.
func (v Verdict) MarshalJSON() ([]byte, error) {
	return json.Marshal(verdictWire{v.Class, v.RetryAfter.Milliseconds(), v.Reason, v.DecidedBy})
}

// UnmarshalJSON reads retryAfterMs into RetryAfter; a negative or
// overflowing value is an error (millis.Duration), never a wrapped duration.
func (v *Verdict) UnmarshalJSON(b []byte) error {
	var w verdictWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	d, err := millis.Duration("retryAfterMs", int64(w.RetryAfterMs), 0, millis.Max)
	if err != nil {
		return err
	}
	*v = Verdict{Class: w.Class, RetryAfter: d, Reason: w.Reason, DecidedBy: w.DecidedBy}
	return nil
}
