package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// DefaultClock is the manual clock's start when a case gives none:
// 2026-01-01T00:00:00Z in epoch ms.
const DefaultClock int64 = 1767225600000

// Case is one replayable scenario: files and a clock, a script of fake
// Anthropic responses, RPC steps, and what must hold afterwards. README.md
// documents every field.
type Case struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Tags are the areas the case covers (files, refresh, quota, routing,
	// classification, lifecycle, PR86); the first is its primary area,
	// the JUnit classname. --tags selects by them.
	Tags      []string `json:"tags,omitempty"`
	Catalogue []int    `json:"catalogue,omitempty"`
	Priority  string   `json:"priority,omitempty"`
	// Evidence cites where the expectation comes from (upstream tests,
	// code, issues, docs/BEHAVIOUR.md).
	Evidence map[string][]string `json:"evidence"`
	// Note is free prose for readers.
	Note string `json:"note,omitempty"`
	// Pending, when set, says why the server cannot pass this case yet. The
	// case still runs but counts as pending, not failed.
	Pending string `json:"pending,omitempty"`
	// Clock is the manual clock's start, epoch ms; DefaultClock if zero.
	Clock int64 `json:"clock,omitempty"`
	Given Given `json:"given"`
	// Fake scripts each endpoint: token, usage, profile, messages,
	// api_messages.
	Fake   map[string][]Exchange `json:"fake,omitempty"`
	Steps  []Step                `json:"steps"`
	Expect Expect                `json:"expect"`

	file string
}

// Given are the files the server starts with. Absent means no file.
type Given struct {
	Config any `json:"config,omitempty"`
	State  any `json:"state,omitempty"`
	// ConfigText and StateText are written verbatim (for corrupt files).
	ConfigText string `json:"configText,omitempty"`
	StateText  string `json:"stateText,omitempty"`
}

// Exchange is one scripted response of a fake endpoint, served Times times
// (default 1; -1 forever), after checking the request against Expect.
type Exchange struct {
	Expect  *RequestExpect `json:"expect,omitempty"`
	Respond Response       `json:"respond"`
	Times   int            `json:"times,omitempty"`
	Note    string         `json:"note,omitempty"`
}

// RequestExpect is what a scripted request must look like: the
// Authorization header, other headers (subset), and JSON body fields
// (subset match).
type RequestExpect struct {
	Auth    any            `json:"auth,omitempty"`
	Headers map[string]any `json:"headers,omitempty"`
	Body    any            `json:"body,omitempty"`
}

// Response is what the fake answers. Body is sent as is when a string, as
// JSON otherwise. Network makes the fake drop the connection instead.
type Response struct {
	Status  int               `json:"status,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    any               `json:"body,omitempty"`
	Network bool              `json:"network,omitempty"`
}

// Step is one action of a case. Exactly one of Call, Advance, Request or
// Check is set.
type Step struct {
	Note string `json:"note,omitempty"`
	// Call is an RPC method; Params its params.
	Call   string `json:"call,omitempty"`
	Params any    `json:"params,omitempty"`
	// Result is a subset the call's result must match; Error, when set,
	// says the call must fail and how.
	Result any        `json:"result,omitempty"`
	Error  *ErrorWant `json:"error,omitempty"`
	// Advance moves the manual clock: a duration such as "61s" or ms.
	Advance any `json:"advance,omitempty"`
	// Request simulates one host model request: route/select, the
	// messages call with the route's credential, route/report, and
	// retries on the next route. Outcome is matched against the result.
	Request *HostRequest `json:"request,omitempty"`
	Outcome any          `json:"outcome,omitempty"`
	// Check matches the files and call counts now, mid-case.
	Check *Expect `json:"check,omitempty"`
}

// ErrorWant describes an expected JSON-RPC error.
type ErrorWant struct {
	Code    *int `json:"code,omitempty"`
	Kind    any  `json:"kind,omitempty"`
	Message any  `json:"message,omitempty"`
	Data    any  `json:"data,omitempty"`
}

// HostRequest is a model request the runner makes as a host would.
type HostRequest struct {
	SessionID   string   `json:"sessionId,omitempty"`
	Model       string   `json:"model,omitempty"`
	PromptBytes int64    `json:"promptBytes,omitempty"`
	Exclude     []string `json:"exclude,omitempty"`
	// Replayable defaults to true.
	Replayable *bool `json:"replayable,omitempty"`
}

// Expect is checked after the steps (or mid-case by a Check step).
type Expect struct {
	// Calls are exact per-endpoint request counts; unlisted endpoints are
	// not counted (but an unscripted request always fails the case).
	Calls map[string]int `json:"calls,omitempty"`
	// Requests are subset matches of each endpoint's recorded requests,
	// in order: {"auth", "method", "path", "headers", "body"}.
	Requests map[string]any `json:"requests,omitempty"`
	// State and Config are subset matches of the files on disk;
	// StateAbsent and ConfigAbsent are dot paths that must not exist.
	State        any      `json:"state,omitempty"`
	StateAbsent  []string `json:"stateAbsent,omitempty"`
	Config       any      `json:"config,omitempty"`
	ConfigAbsent []string `json:"configAbsent,omitempty"`
}

// LoadCases reads every *.json file of fsys's root as a case, sorted by
// file name. Unknown fields are errors, so a typo cannot silently weaken a
// case.
func LoadCases(fsys fs.FS) ([]*Case, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var cases []*Case
	seen := map[string]string{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		c, err := ParseCase(b)
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", name, err)
		}
		c.file = name
		if prev, dup := seen[c.ID]; dup {
			return nil, fmt.Errorf("case %s: id %q already used by %s", name, c.ID, prev)
		}
		seen[c.ID] = name
		cases = append(cases, c)
	}
	return cases, nil
}

// ParseCase decodes and checks one case.
func ParseCase(b []byte) (*Case, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	var c Case
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return &c, nil
}

var endpoints = map[string]bool{"token": true, "usage": true, "profile": true, "messages": true, "api_messages": true}

func (c *Case) check() error {
	var problems []string
	if c.ID == "" {
		problems = append(problems, "id is required")
	}
	if len(c.Evidence) == 0 {
		problems = append(problems, "evidence is required")
	}
	for _, t := range c.Tags {
		if t == "" || strings.ContainsAny(t, " \t,") {
			problems = append(problems, fmt.Sprintf("tag %q: a tag is one word without commas", t))
		}
	}
	for ep := range c.Fake {
		if !endpoints[ep] {
			problems = append(problems, fmt.Sprintf("unknown fake endpoint %q", ep))
		}
	}
	for ep := range c.Expect.Calls {
		if !endpoints[ep] {
			problems = append(problems, fmt.Sprintf("unknown endpoint %q in expect.calls", ep))
		}
	}
	for i, s := range c.Steps {
		n := 0
		for _, set := range []bool{s.Call != "", s.Advance != nil, s.Request != nil, s.Check != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			problems = append(problems, fmt.Sprintf("step %d: exactly one of call, advance, request, check", i+1))
		}
		if s.Outcome != nil && s.Request == nil {
			problems = append(problems, fmt.Sprintf("step %d: outcome needs request", i+1))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}

// File is the name of the file the case came from.
func (c *Case) File() string { return path.Base(c.file) }
