package plugincheck

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// corpusJSON is the built-in corpus: a realistic failure for every row of
// the classification table (README.md), in the --cases file shape.
//
//go:embed corpus.json
var corpusJSON []byte

// CasesFile is the shape of a --cases file (and of the built-in corpus):
//
//	{"cases": [
//	  {"name": "usage 403 from our org", "source": "usage", "status": 403,
//	   "headers": {"anthropic-organization-id": "org-acme-0001"},
//	   "body": {"type": "error", "error": {"type": "permission_error", "message": "..."}},
//	   "expect": {"class": "invalid_grant", "decidedBy": "plugin"}}
//	]}
//
// A bare array of cases is accepted too. Unknown keys are errors.
type CasesFile struct {
	Cases []Case `json:"cases"`
}

// Case is one failure to classify, as the server would build it from an
// upstream response.
type Case struct {
	// Name identifies the case in the table and reports; unique.
	Name string `json:"name"`
	// Source is the endpoint: "token", "usage" or "messages".
	Source verdict.Source `json:"source"`
	// Status is the HTTP status; 0 with Network for a transport failure.
	Status int `json:"status,omitempty"`
	// Network marks a failure below HTTP (refused, reset, DNS).
	Network bool `json:"network,omitempty"`
	// StreamRateLimit marks a 200 event stream that opened with
	// rate_limit_error.
	StreamRateLimit bool `json:"streamRateLimit,omitempty"`
	// Headers are response headers (the host passes the plugin only its
	// allow-list: retry-after, content-type, request ids,
	// anthropic-organization-id, rate-limit headers, ...).
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the response body: a string as is, anything else as JSON.
	Body json.RawMessage `json:"body,omitempty"`
	// Message is the host's description; default, as the server does it:
	// the trimmed body, or "network error".
	Message string `json:"message,omitempty"`
	// Expect, if set, is what the final verdict must be.
	Expect *Expect `json:"expect,omitempty"`

	builtin bool
}

// Expect is an optional assertion on a case's final verdict.
type Expect struct {
	// Class is the class the verdict must have.
	Class verdict.Class `json:"class,omitempty"`
	// DecidedBy is "plugin" (the plugin must have an opinion) or
	// "builtin" (it must have none).
	DecidedBy string `json:"decidedBy,omitempty"`
	// RetryAfterMs, if set, is the wait the verdict must carry.
	RetryAfterMs *int64 `json:"retryAfterMs,omitempty"`
}

// BuiltinCorpus returns the built-in cases.
func BuiltinCorpus() ([]Case, error) {
	cases, err := ParseCases(corpusJSON)
	if err != nil {
		return nil, fmt.Errorf("built-in corpus: %w", err)
	}
	for i := range cases {
		cases[i].builtin = true
	}
	return cases, nil
}

// ParseCases decodes and checks a --cases file.
func ParseCases(data []byte) ([]Case, error) {
	var cf CasesFile
	trimmed := bytes.TrimSpace(data)
	var err error
	if len(trimmed) > 0 && trimmed[0] == '[' {
		err = strictDecode(trimmed, &cf.Cases)
	} else {
		err = strictDecode(trimmed, &cf)
	}
	if err != nil {
		return nil, err
	}
	if len(cf.Cases) == 0 {
		return nil, fmt.Errorf(`no cases: want {"cases": [{"name": ..., "source": ..., "status": ...}, ...]}`)
	}
	seen := map[string]bool{}
	var problems []string
	for i, c := range cf.Cases {
		where := fmt.Sprintf("cases[%d]", i)
		if c.Name != "" {
			where += fmt.Sprintf(" (%s)", c.Name)
		}
		for _, p := range c.problems() {
			problems = append(problems, where+": "+p)
		}
		if c.Name != "" && seen[c.Name] {
			problems = append(problems, where+": duplicate name")
		}
		seen[c.Name] = true
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return cf.Cases, nil
}

func (c Case) problems() []string {
	var out []string
	if c.Name == "" {
		out = append(out, "name is required")
	}
	if !c.Source.Valid() {
		out = append(out, fmt.Sprintf("source %q: must be token, usage or messages", c.Source))
	}
	if c.Status < 0 || c.Status > 999 {
		out = append(out, fmt.Sprintf("status %d: must be an HTTP status, or 0 with network", c.Status))
	}
	if c.Network && c.Status != 0 {
		out = append(out, "network: a network failure has no status")
	}
	if !c.Network && c.Status == 0 {
		out = append(out, `status is required (or "network": true)`)
	}
	if c.Expect != nil {
		if c.Expect.Class != "" && !c.Expect.Class.Valid() {
			out = append(out, fmt.Sprintf("expect.class %q: not a class", c.Expect.Class))
		}
		if d := c.Expect.DecidedBy; d != "" && d != "plugin" && d != "builtin" {
			out = append(out, fmt.Sprintf(`expect.decidedBy %q: must be "plugin" or "builtin"`, d))
		}
	}
	return out
}

// body returns the body bytes: a JSON string's content, else the JSON.
func (c Case) body() []byte {
	if len(c.Body) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(c.Body, &s) == nil {
		return []byte(s)
	}
	var buf bytes.Buffer
	if json.Compact(&buf, c.Body) == nil {
		return buf.Bytes()
	}
	return c.Body
}

// Failure builds the classifier input as the server would from this
// response: headers as received, the body, and the redacted message.
func (c Case) Failure(at time.Time) verdict.Failure {
	f := verdict.Failure{Source: c.Source, Status: c.Status, Network: c.Network, StreamRateLimit: c.StreamRateLimit, At: at, Body: c.body()}
	if len(c.Headers) > 0 {
		f.Header = http.Header{}
		for k, v := range c.Headers {
			f.Header.Set(k, v)
		}
	}
	switch {
	case c.Message != "":
		f.Message = secret.Redact(c.Message)
	case c.Network:
		f.Message = "network error"
	default:
		f.Message = secret.Redact(string(bytes.TrimSpace(f.Body)))
	}
	return f
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the cases")
	}
	return nil
}
