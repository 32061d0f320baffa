package conformance

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Paths the fake serves, one per endpoint.
const (
	TokenPath       = "/v1/oauth/token"
	UsagePath       = "/api/oauth/usage"
	ProfilePath     = "/api/oauth/profile"
	MessagesPath    = "/v1/messages"
	APIMessagesPath = "/api-route/v1/messages"
)

// Recorded is one request the fake received.
type Recorded struct {
	Endpoint string            `json:"endpoint"`
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Auth     string            `json:"auth,omitempty"`
	Headers  map[string]string `json:"headers"`
	// Body is the JSON body when it parses, else the raw text.
	Body any `json:"body,omitempty"`
}

// Fake is a scripted stand-in for Anthropic's token, usage, profile and
// messages endpoints (plus api_messages, an API-key route's base URL). Each
// endpoint answers from its own list of exchanges in order; it records
// every request, checks each against the wire contract and the exchange's
// expectations, and counts anything unexpected as a problem.
type Fake struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   map[string][]Exchange
	used     map[string]int // exchanges fully consumed, per endpoint
	served   map[string]int // times the current exchange was served
	requests []Recorded
	problems []string
}

// NewFake starts a fake on 127.0.0.1 serving script. Close it when done.
func NewFake(script map[string][]Exchange) *Fake {
	f := &Fake{script: script, used: map[string]int{}, served: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the fake's base URL.
func (f *Fake) URL() string { return f.srv.URL }

// Close stops the fake.
func (f *Fake) Close() { f.srv.Close() }

// SetScript replaces the script (before any request arrives).
func (f *Fake) SetScript(script map[string][]Exchange) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = script
}

// Requests returns what the fake received, in order.
func (f *Fake) Requests() []Recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Recorded(nil), f.requests...)
}

// Calls counts the received requests per endpoint.
func (f *Fake) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, r := range f.requests {
		n[r.Endpoint]++
	}
	return n
}

// Problems lists wire-contract violations, failed request expectations and
// unscripted requests.
func (f *Fake) Problems() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.problems...)
}

func endpointOf(path string) string {
	switch path {
	case TokenPath:
		return "token"
	case UsagePath:
		return "usage"
	case ProfilePath:
		return "profile"
	case MessagesPath:
		return "messages"
	case APIMessagesPath:
		return "api_messages"
	}
	return ""
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	rec := Recorded{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization"), Headers: map[string]string{}}
	rec.Endpoint = endpointOf(r.URL.Path)
	for k := range r.Header {
		rec.Headers[strings.ToLower(k)] = r.Header.Get(k)
	}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			rec.Body = v
		} else {
			rec.Body = string(raw)
		}
	}

	f.mu.Lock()
	f.requests = append(f.requests, rec)
	n := 0
	for _, q := range f.requests {
		if q.Endpoint == rec.Endpoint {
			n++
		}
	}
	where := fmt.Sprintf("%s request #%d", rec.Endpoint, n)
	if rec.Endpoint == "" {
		f.problems = append(f.problems, fmt.Sprintf("request to unknown path %s %s", r.Method, r.URL.Path))
		f.mu.Unlock()
		http.Error(w, "unknown path", http.StatusNotFound)
		return
	}
	for _, p := range contractProblems(rec) {
		f.problems = append(f.problems, where+": "+p)
	}
	ex, ok := f.next(rec.Endpoint)
	if !ok {
		f.problems = append(f.problems, where+": unscripted (the case's fake script for this endpoint is used up)")
		f.mu.Unlock()
		http.Error(w, "conformance fake: unscripted request", http.StatusTeapot)
		return
	}
	if ex.Expect != nil {
		for _, p := range requestProblems(*ex.Expect, rec) {
			f.problems = append(f.problems, where+": "+p)
		}
	}
	f.mu.Unlock()
	if writeMessagesReply(w, rec, ex.Respond) {
		return
	}
	respond(w, ex.Respond)
}

// next returns the exchange to serve for an endpoint and consumes it.
func (f *Fake) next(endpoint string) (Exchange, bool) {
	list := f.script[endpoint]
	for f.used[endpoint] < len(list) {
		ex := list[f.used[endpoint]]
		times := ex.Times
		if times == 0 {
			times = 1
		}
		if times < 0 || f.served[endpoint] < times {
			f.served[endpoint]++
			return ex, true
		}
		f.used[endpoint]++
		f.served[endpoint] = 0
	}
	return Exchange{}, false
}

func respond(w http.ResponseWriter, r Response) {
	if r.Network {
		// Drop the connection without an answer: the client sees a
		// transport failure, as with a reset.
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	var body []byte
	contentType := "text/plain"
	switch b := r.Body.(type) {
	case nil:
	case string:
		body = []byte(b)
		if strings.HasPrefix(strings.TrimSpace(b), "event:") {
			contentType = "text/event-stream"
		}
	default:
		body, _ = json.Marshal(b)
		contentType = "application/json"
	}
	w.Header().Set("Content-Type", contentType)
	for k, v := range r.Headers {
		w.Header().Set(k, v)
	}
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	w.Write(body)
}

// contractProblems checks a request against the wire contract of
// conformance-cases.md section 1, whatever the case says.
func contractProblems(r Recorded) []string {
	var out []string
	want := func(ok bool, format string, args ...any) {
		if !ok {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	switch r.Endpoint {
	case "token":
		want(r.Method == http.MethodPost, "method %s, want POST", r.Method)
		want(strings.Contains(r.Headers["content-type"], "application/json"), "content-type %q, want application/json", r.Headers["content-type"])
		body, _ := r.Body.(map[string]any)
		want(body != nil, "body is not a JSON object")
		if body != nil {
			grant, _ := body["grant_type"].(string)
			want(grant == "refresh_token" || grant == "authorization_code", "grant_type %q", grant)
			id, _ := body["client_id"].(string)
			want(id != "", "client_id missing")
			if grant == "refresh_token" {
				rt, _ := body["refresh_token"].(string)
				want(rt != "", "refresh_token missing")
			}
		}
	case "usage", "profile":
		want(r.Method == http.MethodGet, "method %s, want GET", r.Method)
		want(strings.HasPrefix(r.Auth, "Bearer ") && len(r.Auth) > len("Bearer "), "authorization %q, want Bearer <access>", r.Auth)
		if r.Endpoint == "usage" {
			want(strings.Contains(r.Headers["anthropic-beta"], "oauth-2025-04-20"), "anthropic-beta %q, want oauth-2025-04-20", r.Headers["anthropic-beta"])
		}
	case "messages", "api_messages":
		want(r.Method == http.MethodPost, "method %s, want POST", r.Method)
		want(r.Auth != "" || r.Headers["x-api-key"] != "", "no credential on the request")
	}
	return out
}

// requestProblems checks a request against an exchange's expectations.
func requestProblems(e RequestExpect, r Recorded) []string {
	var out []string
	if e.Auth != nil {
		out = append(out, match("auth", e.Auth, r.Auth, r.Auth != "")...)
	}
	for k, v := range e.Headers {
		got, ok := r.Headers[strings.ToLower(k)]
		out = append(out, match("headers."+k, v, got, ok)...)
	}
	if e.Body != nil {
		out = append(out, match("body", e.Body, r.Body, r.Body != nil)...)
	}
	return out
}

// asJSONTree turns a Go value into the map/slice/json.Number tree that
// match works on.
func asJSONTree(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if dec.Decode(&out) != nil {
		return nil
	}
	return out
}
