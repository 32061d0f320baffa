package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/acctpool/acctpool/internal/syncbuf"
	"github.com/acctpool/acctpool/schema/validate"
)

// Case outcomes.
const (
	StatusPassed  = "passed"
	StatusFailed  = "failed"
	StatusPending = "pending"
)

// Options configure [Run].
type Options struct {
	// Server is the server command and its arguments; the runner appends
	// its own flags. Required.
	Server []string
	// ServerVersion is what the server's --version printed, for the
	// report ([ServerVersion] finds it).
	ServerVersion string
	// Cases to run; Filter, if set, keeps those whose id matches and
	// Tags, if any, those with at least one of the tags (see [Select]).
	Cases  []*Case
	Filter *regexp.Regexp
	Tags   []string
	// Progress, if set, gets one line per case as it finishes, and the
	// step and diff of a failure; Verbose adds every failure line and the
	// server's stderr tail.
	Progress io.Writer
	Verbose  bool
	// CaseTimeout bounds one case; 30 s if zero.
	CaseTimeout time.Duration
}

// Result is the outcome of one case.
type Result struct {
	ID      string   `json:"id"`
	File    string   `json:"file"`
	Title   string   `json:"title,omitempty"`
	Tags    []string `json:"tags,omitempty"`
	Status  string   `json:"status"`
	Pending string   `json:"pending,omitempty"`
	// Failures are every problem found, one line each.
	Failures []string `json:"failures,omitempty"`
	// Step names where the case failed: "step N (method)", "step N
	// (request)", "step N (advance)", "step N (check)", "expect" (the
	// checks after the steps), or "setup" (the case could not start:
	// files, server start, handshake).
	Step string `json:"step,omitempty"`
	// Diff are the failing step's mismatches as expected/actual pairs
	// (empty when the failure is no value comparison, such as a server
	// that exited).
	Diff     []Mismatch          `json:"diff,omitempty"`
	Evidence map[string][]string `json:"evidence,omitempty"`
	Stderr   string              `json:"stderr,omitempty"`
	Millis   int64               `json:"ms"`
}

// Run replays every selected case ([Select]) against a fresh server
// process each. Progress, if set, gets each case's line (and, for a
// failure, its diff) as the case finishes.
func Run(ctx context.Context, opts Options) Report {
	rep := Report{Suite: SuiteVersion, Server: opts.Server, ServerVersion: opts.ServerVersion, Results: []Result{}}
	start := time.Now()
	for _, c := range Select(opts.Cases, opts.Filter, opts.Tags) {
		r := RunCase(ctx, opts, c)
		switch r.Status {
		case StatusPassed:
			rep.Passed++
		case StatusPending:
			rep.Pending++
		default:
			rep.Failed++
		}
		rep.Results = append(rep.Results, r)
		if opts.Progress != nil {
			fmt.Fprintln(opts.Progress, r.Line())
			if d := r.Detail(opts.Verbose); d != "" {
				fmt.Fprint(opts.Progress, d)
			}
		}
	}
	rep.Millis = time.Since(start).Milliseconds()
	return rep
}

// exitGuard bounds the wait for a server's shutdown answer and its exit.
const exitGuard = time.Minute

// RunCase replays one case. A case marked pending that fails is reported
// pending; one that passes is reported passed, so the mark can go.
func RunCase(ctx context.Context, opts Options, c *Case) Result {
	start := time.Now()
	timeout := opts.CaseTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cr := &caseRun{c: c, opts: opts, stepLabel: "setup"}
	failures := cr.run(ctx)
	res := Result{ID: c.ID, File: c.File(), Title: c.Title, Tags: c.Tags, Evidence: c.Evidence, Failures: failures, Millis: time.Since(start).Milliseconds()}
	if len(failures) > 0 {
		res.Step, res.Diff = cr.stepLabel, cr.diffs
	}
	switch {
	case len(failures) == 0:
		res.Status = StatusPassed
	case c.Pending != "":
		res.Status, res.Pending = StatusPending, c.Pending
	default:
		res.Status = StatusFailed
		res.Stderr = tail(cr.stderr.String(), 40)
	}
	return res
}

type caseRun struct {
	c      *Case
	opts   Options
	env    env
	fake   *Fake
	dir    string
	cli    *client
	stderr syncBuffer

	// stepLabel names the part of the case running now; diffs are the
	// mismatches recorded since it began.
	stepLabel string
	diffs     []Mismatch
}

// match is [compare] that also records the mismatches for the result's
// diff, rendered as lines.
func (r *caseRun) match(path string, want, actual any, present bool) []string {
	ms := compare(path, want, actual, present)
	r.diffs = append(r.diffs, ms...)
	return mismatchStrings(ms)
}

// begin starts a new part of the case: a step or the final expect.
func (r *caseRun) begin(label string) {
	r.stepLabel, r.diffs = label, nil
}

func (r *caseRun) configPath() string { return filepath.Join(r.dir, "anthropic-auth.json") }
func (r *caseRun) statePath() string  { return filepath.Join(r.dir, "anthropic-auth-state.json") }

func (r *caseRun) run(ctx context.Context) (failures []string) {
	if len(r.opts.Server) == 0 {
		return []string{"no server command"}
	}
	t0 := r.c.Clock
	if t0 == 0 {
		t0 = DefaultClock
	}
	r.fake = NewFake(nil)
	defer r.fake.Close()
	r.env = env{t0: t0, fake: r.fake.URL()}
	script, err := r.script()
	if err != nil {
		return []string{"case: " + err.Error()}
	}
	r.fake.SetScript(script)

	dir, err := os.MkdirTemp("", "acctpool-conformance-")
	if err != nil {
		return []string{err.Error()}
	}
	defer os.RemoveAll(dir)
	r.dir = dir
	if err := r.writeFiles(); err != nil {
		return []string{"case: " + err.Error()}
	}

	stop, err := r.start(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	defer func() {
		if err := stop(); err != nil && len(failures) == 0 {
			failures = append(failures, err.Error())
		}
	}()

	if err := r.handshake(ctx, t0); err != nil {
		return append([]string{err.Error()}, r.fake.Problems()...)
	}
	for i, s := range r.c.Steps {
		label := fmt.Sprintf("step %d", i+1)
		switch {
		case s.Call != "":
			label += " (" + s.Call + ")"
		case s.Request != nil:
			label += " (request)"
		case s.Advance != nil:
			label += " (advance)"
		case s.Check != nil:
			label += " (check)"
		}
		r.begin(label)
		if probs := r.step(ctx, s); len(probs) > 0 {
			for j := range probs {
				probs[j] = label + ": " + probs[j]
			}
			return append(probs, r.fake.Problems()...)
		}
	}
	r.begin("expect")
	failures = append(failures, r.expect("expect", r.c.Expect)...)
	return append(failures, r.fake.Problems()...)
}

func (r *caseRun) script() (map[string][]Exchange, error) {
	out := map[string][]Exchange{}
	for ep, list := range r.c.Fake {
		for _, ex := range list {
			body, err := r.env.expand(ex.Respond.Body)
			if err != nil {
				return nil, err
			}
			ex.Respond.Body = body
			if ex.Respond.Headers, err = r.env.expandHeaders(ex.Respond.Headers); err != nil {
				return nil, err
			}
			if ex.Expect != nil {
				e := *ex.Expect
				if e.Auth, err = r.env.expand(e.Auth); err != nil {
					return nil, err
				}
				if e.Body, err = r.env.expand(e.Body); err != nil {
					return nil, err
				}
				ex.Expect = &e
			}
			out[ep] = append(out[ep], ex)
		}
	}
	return out, nil
}

func (r *caseRun) writeFiles() error {
	write := func(path string, v any, text string) error {
		if text != "" {
			return os.WriteFile(path, []byte(text), 0o600)
		}
		if v == nil {
			return nil
		}
		ev, err := r.env.expand(v)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(ev, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(path, append(b, '\n'), 0o600)
	}
	if err := write(r.configPath(), r.c.Given.Config, r.c.Given.ConfigText); err != nil {
		return err
	}
	return write(r.statePath(), r.c.Given.State, r.c.Given.StateText)
}

func (r *caseRun) start(ctx context.Context) (stop func() error, err error) {
	args := append([]string(nil), r.opts.Server[1:]...)
	args = append(args,
		"--config", r.configPath(),
		"--state", r.statePath(),
		"--token-url", r.fake.URL()+TokenPath,
		"--usage-url", r.fake.URL()+UsagePath,
		"--profile-url", r.fake.URL()+ProfilePath,
		"--clock", "manual",
		"--log-level", "debug",
	)
	cmd := exec.Command(r.opts.Server[0], args...)
	cmd.Dir = r.dir
	cmd.Stderr = &r.stderr
	cmd.Env = append(os.Environ(),
		"OPENCODE_CONFIG_DIR="+r.dir,
		"OPENCODE_ANTHROPIC_AUTH_FILE="+r.configPath(),
		"OPENCODE_ANTHROPIC_AUTH_STATE_FILE="+r.statePath(),
		"OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE="+filepath.Join(r.dir, "anthropic-auth-routing-state.json"),
	)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	r.cli = newClient(stdout, stdin)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	return func() error {
		// Deadlock guards, not speed requirements: a busy CI machine may
		// take seconds to schedule a process that exits at once.
		sctx, cancel := context.WithTimeout(context.Background(), exitGuard)
		defer cancel()
		_, _ = r.cli.call(sctx, "shutdown", nil)
		_ = r.cli.notify("exit", nil)
		stdin.Close()
		select {
		case <-waited:
			return nil
		case <-time.After(exitGuard):
			cmd.Process.Kill()
			<-waited
			return fmt.Errorf("server did not exit within %s of shutdown and exit", exitGuard)
		}
	}, nil
}

// rpc calls a method, validates the result (or error data) against
// schema/openrpc.json, and returns the result as a JSON tree.
func (r *caseRun) rpc(ctx context.Context, method string, params any) (any, *RPCError, []string) {
	raw, err := r.cli.call(ctx, method, params)
	var probs []string
	var rerr *RPCError
	if errors.As(err, &rerr) {
		if len(rerr.Data) > 0 && (rerr.Code < -32768 || rerr.Code > -32000) {
			if verr := validate.ValidateErrorData(rerr.Data); verr != nil {
				probs = append(probs, "error data: "+verr.Error())
			}
		}
		return nil, rerr, probs
	}
	if err != nil {
		return nil, nil, []string{err.Error()}
	}
	if verr := validate.ValidateResult(method, raw); verr != nil {
		probs = append(probs, "schema: "+verr.Error())
	}
	return decodeTree(raw), nil, probs
}

func decodeTree(raw []byte) any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

func (r *caseRun) handshake(ctx context.Context, t0 int64) error {
	_, rerr, probs := r.rpc(ctx, "initialize", map[string]any{
		"protocolVersion": "1",
		"clientInfo":      map[string]any{"name": "acctpool-conformance", "version": "1"},
	})
	if rerr != nil {
		return fmt.Errorf("initialize: %w", rerr)
	}
	if len(probs) > 0 {
		return fmt.Errorf("initialize: %s", strings.Join(probs, "; "))
	}
	if err := r.cli.notify("initialized", map[string]any{}); err != nil {
		return err
	}
	if _, rerr, probs := r.rpc(ctx, "test/clock/set", map[string]any{"nowMs": t0}); rerr != nil || len(probs) > 0 {
		return fmt.Errorf("test/clock/set: %v %s", rerr, strings.Join(probs, "; "))
	}
	return nil
}

func (r *caseRun) step(ctx context.Context, s Step) []string {
	switch {
	case s.Advance != nil:
		ms, err := durationMs(s.Advance)
		if err != nil {
			return []string{err.Error()}
		}
		if _, rerr, probs := r.rpc(ctx, "test/clock/advance", map[string]any{"ms": ms}); rerr != nil {
			return []string{rerr.Error()}
		} else if len(probs) > 0 {
			return probs
		}
		return nil
	case s.Check != nil:
		return r.expect("check", *s.Check)
	case s.Request != nil:
		out, probs := r.hostRequest(ctx, *s.Request)
		if len(probs) > 0 {
			return probs
		}
		if s.Outcome == nil {
			return nil
		}
		want, err := r.env.expand(s.Outcome)
		if err != nil {
			return []string{err.Error()}
		}
		return r.match("outcome", want, asJSONTree(out), true)
	}
	params, err := r.env.expand(s.Params)
	if err != nil {
		return []string{err.Error()}
	}
	res, rerr, probs := r.rpc(ctx, s.Call, params)
	if s.Error != nil {
		if rerr == nil {
			return append(probs, fmt.Sprintf("want an error, got result %s", show(res)))
		}
		return append(probs, r.matchError(*s.Error, rerr)...)
	}
	if rerr != nil {
		return append(probs, fmt.Sprintf("unexpected error %d %q data %s", rerr.Code, rerr.Message, string(rerr.Data)))
	}
	if s.Result != nil {
		want, err := r.env.expand(s.Result)
		if err != nil {
			return []string{err.Error()}
		}
		probs = append(probs, r.match("result", want, res, true)...)
	}
	return probs
}

func (r *caseRun) matchError(w ErrorWant, e *RPCError) []string {
	var probs []string
	if w.Code != nil && *w.Code != e.Code {
		probs = append(probs, fmt.Sprintf("error code %d, want %d (message %q)", e.Code, *w.Code, e.Message))
	}
	data := decodeTree(e.Data)
	if w.Kind != nil {
		k, ok := lookup(data, "kind")
		probs = append(probs, r.match("error.data.kind", w.Kind, k, ok)...)
	}
	if w.Message != nil {
		want, _ := r.env.expand(w.Message)
		probs = append(probs, r.match("error.message", want, e.Message, true)...)
	}
	if w.Data != nil {
		want, err := r.env.expand(w.Data)
		if err != nil {
			return []string{err.Error()}
		}
		probs = append(probs, r.match("error.data", want, data, data != nil)...)
	}
	return probs
}

// expect checks call counts, recorded requests and the files.
func (r *caseRun) expect(label string, e Expect) []string {
	var probs []string
	calls := r.fake.Calls()
	for ep, n := range e.Calls {
		if calls[ep] != n {
			r.diffs = append(r.diffs, Mismatch{Path: "calls." + ep, Got: fmt.Sprint(calls[ep]), Want: fmt.Sprint(n)})
			probs = append(probs, fmt.Sprintf("%s: %d %s calls, want %d", label, calls[ep], ep, n))
		}
	}
	if len(e.Requests) > 0 {
		byEP := map[string][]any{}
		for _, rec := range r.fake.Requests() {
			byEP[rec.Endpoint] = append(byEP[rec.Endpoint], asJSONTree(rec))
		}
		for ep, want := range e.Requests {
			w, err := r.env.expand(want)
			if err != nil {
				return []string{err.Error()}
			}
			got := byEP[ep]
			if got == nil {
				got = []any{}
			}
			probs = append(probs, prefix(label+": ", r.match("requests."+ep, w, any(got), true))...)
		}
	}
	probs = append(probs, r.fileExpect(label, "state", r.statePath(), e.State, e.StateAbsent)...)
	probs = append(probs, r.fileExpect(label, "config", r.configPath(), e.Config, e.ConfigAbsent)...)
	return probs
}

func (r *caseRun) fileExpect(label, name, path string, want any, absent []string) []string {
	if want == nil && len(absent) == 0 {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return []string{fmt.Sprintf("%s: read %s file: %v", label, name, err)}
	}
	got := decodeTree(b)
	if got == nil {
		return []string{fmt.Sprintf("%s: %s file is not JSON", label, name)}
	}
	var probs []string
	if want != nil {
		w, err := r.env.expand(want)
		if err != nil {
			return []string{err.Error()}
		}
		probs = append(probs, prefix(label+": ", r.match(name, w, got, true))...)
	}
	for _, p := range absent {
		if v, ok := lookup(got, p); ok {
			r.diffs = append(r.diffs, Mismatch{Path: name + "." + p, Got: show(v), Want: "absent"})
			probs = append(probs, fmt.Sprintf("%s: %s.%s must be absent, got %s", label, name, p, show(v)))
		}
	}
	return probs
}

// Outcome is what a simulated host request ended with.
type Outcome struct {
	// Status and Body are what the host hands its caller: the last
	// upstream response, or the synthetic one of a hold or no-route.
	Status int    `json:"status"`
	Body   string `json:"body"`
	// Action is the last route/report action, or "noRoute" when
	// route/select (or route/report) found no account.
	Action string `json:"action"`
	// Accounts are the account ids tried, in order.
	Accounts     []string          `json:"accounts"`
	Verdicts     []json.RawMessage `json:"verdicts"`
	RetryAfterMs int64             `json:"retryAfterMs,omitempty"`
	NoRoute      json.RawMessage   `json:"noRoute,omitempty"`
	// SelectError is set when route/select failed with another error.
	SelectError *RPCError `json:"selectError,omitempty"`
}

type routeWire struct {
	AccountID  string `json:"accountId"`
	Credential struct {
		Type    string `json:"type"`
		Token   string `json:"token"`
		BaseURL string `json:"baseURL"`
	} `json:"credential"`
}

// hostRequest plays a host: select a route, send the model request to the
// fake with the route's credential, report what came back, and follow
// "retry" to the next route (at most 8 attempts).
func (r *caseRun) hostRequest(ctx context.Context, hr HostRequest) (Outcome, []string) {
	out := Outcome{Accounts: []string{}, Verdicts: []json.RawMessage{}}
	replayable := hr.Replayable == nil || *hr.Replayable
	sel := map[string]any{}
	if hr.SessionID != "" {
		sel["sessionId"] = hr.SessionID
	}
	if hr.Model != "" {
		sel["model"] = hr.Model
	}
	if hr.PromptBytes != 0 {
		sel["promptBytes"] = hr.PromptBytes
	}
	if len(hr.Exclude) > 0 {
		sel["exclude"] = hr.Exclude
	}
	raw, err := r.cli.call(ctx, "route/select", sel)
	var rerr *RPCError
	if errors.As(err, &rerr) {
		var probs []string
		if verr := validate.ValidateErrorData(rerr.Data); len(rerr.Data) > 0 && verr != nil {
			probs = append(probs, "route/select error data: "+verr.Error())
		}
		if kind, _ := lookup(decodeTree(rerr.Data), "kind"); kind == "no_account_available" {
			out.Action, out.NoRoute = "noRoute", rerr.Data
			r.synthesize(&out, rerr.Data)
			return out, probs
		}
		out.Action, out.SelectError = "error", rerr
		return out, probs
	}
	if err != nil {
		return out, []string{"route/select: " + err.Error()}
	}
	if verr := validate.ValidateResult("route/select", raw); verr != nil {
		return out, []string{"route/select schema: " + verr.Error()}
	}
	route := json.RawMessage(raw)
	for attempt := 0; attempt < 8; attempt++ {
		var rt routeWire
		if err := json.Unmarshal(route, &rt); err != nil {
			return out, []string{"route: " + err.Error()}
		}
		out.Accounts = append(out.Accounts, rt.AccountID)
		status, headers, body, network := r.send(ctx, rt)
		report := map[string]any{"route": route, "status": status, "replayable": replayable}
		if network {
			report["network"] = true
		}
		if len(headers) > 0 {
			report["headers"] = headers
		}
		if body != "" {
			report["body"] = excerpt(body, 4096)
		}
		if streamRateLimited(status, body) {
			report["streamRateLimit"] = true
		}
		res, rerr, probs := r.rpc(ctx, "route/report", report)
		if len(probs) > 0 {
			return out, prefix("route/report: ", probs)
		}
		if rerr != nil {
			return out, []string{"route/report: " + rerr.Error() + " " + string(rerr.Data)}
		}
		out.Status, out.Body = status, body
		var rr struct {
			Verdict      json.RawMessage `json:"verdict"`
			Action       string          `json:"action"`
			Next         json.RawMessage `json:"next"`
			RetryAfterMs int64           `json:"retryAfterMs"`
			NoRoute      json.RawMessage `json:"noRoute"`
		}
		b, _ := json.Marshal(res)
		_ = json.Unmarshal(b, &rr)
		if len(rr.Verdict) > 0 {
			out.Verdicts = append(out.Verdicts, rr.Verdict)
		}
		out.Action, out.RetryAfterMs = rr.Action, rr.RetryAfterMs
		switch {
		case rr.Action == "retry" && len(rr.Next) > 0:
			route = rr.Next
			continue
		case rr.Action == "hold":
			out.Status = http.StatusTooManyRequests
			out.Body = fmt.Sprintf(`{"type":"error","error":{"type":"rate_limit_error","message":"held for %d ms"}}`, rr.RetryAfterMs)
		case len(rr.NoRoute) > 0 && string(rr.NoRoute) != "null":
			out.NoRoute = rr.NoRoute
			if rr.Action != "return" {
				out.Action = "noRoute"
				r.synthesize(&out, rr.NoRoute)
			}
		case rr.Action == "retry":
			return out, []string{"route/report: action retry without next"}
		}
		return out, nil
	}
	return out, []string{"more than 8 attempts for one request"}
}

// synthesize turns a NoRoute into the upstream-shaped response a host
// returns.
func (r *caseRun) synthesize(out *Outcome, noRoute []byte) {
	var nr struct {
		Status       int    `json:"status"`
		ErrorType    string `json:"errorType"`
		Message      string `json:"message"`
		RetryAfterMs int64  `json:"retryAfterMs"`
	}
	_ = json.Unmarshal(noRoute, &nr)
	out.Status, out.RetryAfterMs = nr.Status, nr.RetryAfterMs
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": nr.ErrorType, "message": nr.Message}})
	out.Body = string(b)
}

func (r *caseRun) send(ctx context.Context, rt routeWire) (status int, headers map[string]string, body string, network bool) {
	url := r.fake.URL() + MessagesPath + "?beta=true"
	if rt.Credential.BaseURL != "" {
		url = strings.TrimRight(rt.Credential.BaseURL, "/") + "/v1/messages"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		return 0, nil, "", true
	}
	req.Header.Set("Content-Type", "application/json")
	if rt.Credential.Type == "x-api-key" {
		req.Header.Set("x-api-key", rt.Credential.Token)
	} else {
		req.Header.Set("Authorization", "Bearer "+rt.Credential.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, "", true
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	headers = map[string]string{}
	for k := range resp.Header {
		headers[strings.ToLower(k)] = resp.Header.Get(k)
	}
	return resp.StatusCode, headers, string(b), false
}

// streamRateLimited is the host-side inspection of a 200 SSE stream whose
// first event is an error of type rate_limit_error.
func streamRateLimited(status int, body string) bool {
	if status != http.StatusOK {
		return false
	}
	first, _, _ := strings.Cut(strings.TrimSpace(body), "\n\n")
	return strings.Contains(first, "event: error") && strings.Contains(first, "rate_limit_error")
}

func excerpt(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func prefix(p string, list []string) []string {
	for i := range list {
		list[i] = p + list[i]
	}
	return list
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// syncBuffer is a goroutine-safe bytes.Buffer (one helper for all).
type syncBuffer = syncbuf.Buffer
