package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/millis"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// methodTable is the server's surface: every request method, its handler
// and whether it runs inline or on its own goroutine. rpc.discover, the
// initialize capabilities and the tests all walk it.
func methodTable(manualClock bool) map[string]method {
	t := map[string]method{
		"initialize":   {call: with(initialize)},
		"shutdown":     {call: with(shutdownParams)},
		"ping":         {call: with(ping)},
		"rpc.discover": {call: discover},

		"accounts/list":         {call: with(accountsList)},
		"accounts/get":          {call: with(accountsGet)},
		"accounts/add":          {call: with(accountsAdd), async: true},
		"accounts/remove":       {call: with(accountsRemove), async: true},
		"accounts/update":       {call: with(accountsUpdate), async: true},
		"accounts/setMain":      {call: with(accountsSetMain), async: true},
		"accounts/login/start":  {call: with(loginStart), async: true},
		"accounts/login/finish": {call: with(loginFinish), async: true},
		"accounts/refresh":      {call: with(accountsRefresh), async: true},
		"accounts/refreshDue":   {call: with(accountsRefreshDue), async: true},
		"accounts/resetBackoff": {call: with(accountsResetBackoff), async: true},

		"quota/get":        {call: with(quotaGet)},
		"quota/refresh":    {call: with(quotaRefresh), async: true},
		"quota/refreshDue": {call: with(quotaRefreshDue), async: true},
		"quota/observe":    {call: with(quotaObserve), async: true},

		"route/select": {call: with(routeSelect), async: true, try: tryWith(routeTrySelect, routeSelect)},
		"route/report": {call: with(routeReport), async: true, try: tryWith(routeTryReport, routeReport)},

		"errors/classify": {call: with(errorsClassify), async: true},

		"config/get":     {call: with(configGet)},
		"config/update":  {call: with(configUpdate), async: true},
		"plugins/list":   {call: with(pluginsList)},
		"plugins/reload": {call: with(pluginsReload), async: true},
	}
	if manualClock {
		t["test/clock/set"] = method{call: with(clockSet)}
		t["test/clock/advance"] = method{call: with(clockAdvance)}
	}
	return t
}

// Params and results. Params types carry their own required-field checks.

type noParams struct{}

type idParams struct {
	ID string `json:"id"`
}

func (p *idParams) check() error {
	if p.ID == "" {
		return required("id")
	}
	return nil
}

type optionalIDParams struct {
	ID string `json:"id,omitempty"`
}

type accountsResult struct {
	Accounts []core.AccountView `json:"accounts"`
}

func accountsOf(views []core.AccountView, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if views == nil {
		views = []core.AccountView{}
	}
	return accountsResult{views}, nil
}

var emptyObject = json.RawMessage("{}")

func ping(context.Context, *Server, *noParams) (any, error) { return emptyObject, nil }

// Accounts.

func accountsList(ctx context.Context, s *Server, _ *noParams) (any, error) {
	return accountsOf(s.eng.ListAccounts(ctx))
}

func accountsGet(ctx context.Context, s *Server, p *idParams) (any, error) {
	return s.eng.GetAccount(ctx, p.ID)
}

type addParams core.AccountSpec

func (p *addParams) check() error {
	if p.Type == "" {
		return required("type")
	}
	return nil
}

func accountsAdd(ctx context.Context, s *Server, p *addParams) (any, error) {
	return s.eng.AddAccount(ctx, core.AccountSpec(*p))
}

type removedResult struct {
	Removed bool `json:"removed"`
}

func accountsRemove(ctx context.Context, s *Server, p *idParams) (any, error) {
	if err := s.eng.RemoveAccount(ctx, p.ID); err != nil {
		return nil, err
	}
	return removedResult{true}, nil
}

type updateParams core.AccountPatch

func (p *updateParams) check() error {
	if p.ID == "" {
		return required("id")
	}
	return nil
}

func accountsUpdate(ctx context.Context, s *Server, p *updateParams) (any, error) {
	return s.eng.UpdateAccount(ctx, core.AccountPatch(*p))
}

type setMainParams core.MainCredentials

func (p *setMainParams) check() error {
	switch {
	case p.Access == "":
		return required("access")
	case p.Refresh == "":
		return required("refresh")
	case p.Expires <= 0:
		return required("expires")
	}
	return nil
}

func accountsSetMain(ctx context.Context, s *Server, p *setMainParams) (any, error) {
	return s.eng.SetMain(ctx, core.MainCredentials(*p))
}

type loginStartParams struct {
	Mode string `json:"mode,omitempty"`
}

func (p *loginStartParams) check() error {
	switch p.Mode {
	case "", "max", "console":
		return nil
	}
	return &paramError{Field: "mode", Problem: fmt.Sprintf("must be \"max\" or \"console\", not %q", p.Mode)}
}

func loginStart(ctx context.Context, s *Server, p *loginStartParams) (any, error) {
	return s.eng.LoginStart(ctx, p.Mode)
}

type loginFinishParams struct {
	Code  string `json:"code"`
	State string `json:"state"`
	Label string `json:"label,omitempty"`
	// Main makes the login the host's main account; its tokens go to the
	// host through accounts/mainRefreshed.
	Main bool `json:"main,omitempty"`
}

func (p *loginFinishParams) check() error {
	switch {
	case p.Code == "":
		return required("code")
	case p.State == "":
		return required("state")
	case p.Main && p.Label != "":
		return &paramError{Field: "label", Problem: "must be empty when main is true (the main account is labelled main)"}
	}
	return nil
}

func loginFinish(ctx context.Context, s *Server, p *loginFinishParams) (any, error) {
	if p.Main {
		return s.eng.LoginFinishMain(ctx, p.Code, p.State)
	}
	return s.eng.LoginFinish(ctx, p.Code, p.State, p.Label)
}

func accountsRefresh(ctx context.Context, s *Server, p *idParams) (any, error) {
	return s.eng.RefreshAccount(ctx, p.ID)
}

func accountsRefreshDue(ctx context.Context, s *Server, _ *noParams) (any, error) {
	return s.eng.RefreshDue(ctx)
}

func accountsResetBackoff(ctx context.Context, s *Server, p *idParams) (any, error) {
	return s.eng.ResetBackoff(ctx, p.ID)
}

// Quota.

func quotaGet(ctx context.Context, s *Server, p *optionalIDParams) (any, error) {
	return accountsOf(s.eng.Quota(ctx, p.ID))
}

func quotaRefresh(ctx context.Context, s *Server, p *idParams) (any, error) {
	return s.eng.RefreshQuota(ctx, p.ID)
}

func quotaRefreshDue(ctx context.Context, s *Server, _ *noParams) (any, error) {
	return s.eng.RefreshQuotaDue(ctx)
}

type observeParams struct {
	ID      string            `json:"id"`
	Headers map[string]string `json:"headers"`
}

func (p *observeParams) check() error {
	switch {
	case p.ID == "":
		return required("id")
	case p.Headers == nil:
		return required("headers")
	}
	return nil
}

func quotaObserve(ctx context.Context, s *Server, p *observeParams) (any, error) {
	return s.eng.ObserveHeaders(ctx, p.ID, httpHeader(p.Headers))
}

// Routing.

type selectParams core.SelectRequest

func routeSelect(ctx context.Context, s *Server, p *selectParams) (any, error) {
	return s.eng.Select(ctx, core.SelectRequest(*p))
}

// routeTrySelect answers route/select inline when the engine can select
// from memory; a selection that must poll, refresh, lock or read a file
// goes to the async lane (ok false).
func routeTrySelect(s *Server, p *selectParams) (any, error, bool) {
	r, err := s.eng.TrySelect(core.SelectRequest(*p))
	if errors.Is(err, core.ErrWouldWait) {
		return nil, nil, false
	}
	return r, err, true
}

type reportParams core.ReportRequest

func (p *reportParams) check() error {
	switch {
	case p.Route.AccountID == "":
		return required("route.accountId")
	case p.Status == 0 && !p.Network:
		return &paramError{Field: "status", Problem: "is required unless network is true"}
	}
	return checkStatus(p.Status)
}

// checkStatus accepts an HTTP status (RFC 9110 section 15: every valid
// status is from 100 to 599) or 0, which stands for "no response" (a
// transport failure).
func checkStatus(status int) error {
	if status != 0 && (status < 100 || status > 599) {
		return &paramError{Field: "status", Problem: fmt.Sprintf("must be an HTTP status from 100 to 599, or 0 for a transport failure, not %d", status)}
	}
	return nil
}

func routeReport(ctx context.Context, s *Server, p *reportParams) (any, error) {
	return s.eng.Report(ctx, core.ReportRequest(*p))
}

// routeTryReport answers route/report inline when the engine can record
// it from memory (a served response, observed in memory and written
// behind); a failure to classify, or a report that must write or read a
// file, goes to the async lane (ok false).
func routeTryReport(s *Server, p *reportParams) (any, error, bool) {
	r, err := s.eng.TryReport(core.ReportRequest(*p))
	if errors.Is(err, core.ErrWouldWait) {
		return nil, nil, false
	}
	return r, err, true
}

// Classification.

type classifyParams struct {
	Source          verdict.Source    `json:"source"`
	Status          *int              `json:"status"`
	Network         bool              `json:"network,omitempty"`
	Headers         map[string]string `json:"headers,omitempty"`
	Body            string            `json:"body,omitempty"`
	Message         string            `json:"message,omitempty"`
	StreamRateLimit bool              `json:"streamRateLimit,omitempty"`
}

func (p *classifyParams) check() error {
	switch {
	case p.Source == "":
		return required("source")
	case !p.Source.Valid():
		return &paramError{Field: "source", Problem: "must be token, usage or messages"}
	case p.Status == nil:
		return required("status")
	}
	return checkStatus(*p.Status)
}

func errorsClassify(ctx context.Context, s *Server, p *classifyParams) (any, error) {
	return s.eng.Classify(ctx, verdict.Failure{
		Source: p.Source, Status: *p.Status, Network: p.Network, Header: httpHeader(p.Headers),
		Body: []byte(p.Body), Message: secret.Redact(p.Message), StreamRateLimit: p.StreamRateLimit,
	}), nil
}

// Config.

type configResult struct {
	Config map[string]json.RawMessage `json:"config"`
}

func configOf(cfg map[string]json.RawMessage, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = map[string]json.RawMessage{}
	}
	return configResult{cfg}, nil
}

func configGet(ctx context.Context, s *Server, _ *noParams) (any, error) {
	return configOf(s.eng.Config(ctx))
}

type configUpdateParams struct {
	Patch map[string]json.RawMessage `json:"patch"`
}

func (p *configUpdateParams) check() error {
	if p.Patch == nil {
		return required("patch")
	}
	return nil
}

func configUpdate(ctx context.Context, s *Server, p *configUpdateParams) (any, error) {
	return configOf(s.eng.UpdateConfig(ctx, p.Patch))
}

// Test clock (--clock manual only).

// maxClockMs is the latest time the test clock may show, the last
// millisecond of year 9999: later times have no RFC 3339 form and their
// epoch milliseconds are close to overflowing.
const maxClockMs = 253402300799999

type clockSetParams struct {
	NowMs *int64 `json:"nowMs"`
}

func (p *clockSetParams) check() error {
	switch {
	case p.NowMs == nil:
		return required("nowMs")
	case *p.NowMs < 0 || *p.NowMs > maxClockMs:
		return &paramError{Field: "nowMs", Problem: fmt.Sprintf("must be epoch milliseconds from 0 to %d (year 9999)", maxClockMs)}
	}
	return nil
}

type clockAdvanceParams struct {
	Ms *int64 `json:"ms"`
	d  time.Duration
}

func (p *clockAdvanceParams) check() error {
	if p.Ms == nil {
		return required("ms")
	}
	d, err := millisParam("ms", *p.Ms, 0, millis.Max)
	p.d = d
	return err
}

// millisParam converts a millisecond param through millis.Duration, the
// one range check, and words a refusal as invalid params naming field.
func millisParam(field string, ms, min, max int64) (time.Duration, error) {
	d, err := millis.Duration(field, ms, min, max)
	var rerr *millis.RangeError
	if errors.As(err, &rerr) {
		return 0, &paramError{Field: field, Problem: fmt.Sprintf("must be from %d to %d milliseconds, not %d", rerr.Min, rerr.Max, rerr.Value)}
	}
	return d, err
}

type clockResult struct {
	NowMs int64 `json:"nowMs"`
}

func clockSet(_ context.Context, s *Server, p *clockSetParams) (any, error) {
	s.opts.ManualClock.Set(time.UnixMilli(*p.NowMs))
	return clockResult{s.opts.ManualClock.Now().UnixMilli()}, nil
}

func clockAdvance(_ context.Context, s *Server, p *clockAdvanceParams) (any, error) {
	if left := maxClockMs - s.opts.ManualClock.Now().UnixMilli(); *p.Ms > left {
		return nil, &paramError{Field: "ms", Problem: fmt.Sprintf("would move the clock past year 9999 (at most %d from now)", max(left, 0))}
	}
	s.opts.ManualClock.Advance(p.d)
	return clockResult{s.opts.ManualClock.Now().UnixMilli()}, nil
}

func httpHeader(m map[string]string) http.Header {
	if m == nil {
		return nil
	}
	h := make(http.Header, len(m))
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}
