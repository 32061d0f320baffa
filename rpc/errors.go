package rpc

import (
	"context"
	"errors"
	"fmt"
	"time"

	json "github.com/goccy/go-json"
	"github.com/sourcegraph/jsonrpc2"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Protocol-level error codes beyond the five jsonrpc2 defines.
const (
	codeServerNotInitialized = -32002 // LSP ServerNotInitialized
	codeRequestCancelled     = -32800 // LSP RequestCancelled
)

// Domain error codes. They sit outside the reserved -32768..-32000 block and
// away from the client-local codes of vscode-jsonrpc (-32099..-32096). Hosts
// should switch on data.kind, which names the same thing in words.
const (
	CodeNoAccountAvailable = -31001
	CodeRefreshBackoff     = -31002
	CodeQuotaBackoff       = -31003
	CodeInvalidGrant       = -31004
	CodeConfigInvalid      = -31005
	CodeCorruptFile        = -31006
	CodeAccountNotFound    = -31007
	CodeLockTimeout        = -31008
	CodeInProgress         = -31009
	CodeMainNotSet         = -31010
	CodeLoginState         = -31011
	CodeUpstreamError      = -31012
)

// Sentinels of the protocol layer. Handlers wrap them with detail
// ("%w: field id is required"); toWireError keeps the code and the outer
// message.
var (
	errInvalidRequest = errors.New("invalid request")
	errMethodNotFound = errors.New("method not found")
	errInvalidParams  = errors.New("invalid params")
	errInternal       = errors.New("internal error")
	errNotInitialized = errors.New("server not initialized")
	errCancelled      = errors.New("request cancelled")
)

// paramError is an invalid-params error that names the field at fault, so
// hosts (and the -32602 data) can point at it.
type paramError struct {
	Field   string
	Problem string
}

func (e *paramError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("invalid params: %s", e.Problem)
	}
	return fmt.Sprintf("invalid params: field %q %s", e.Field, e.Problem)
}

func (e *paramError) Unwrap() error { return errInvalidParams }

// errorData is the data member of every error the server sends.
type errorData struct {
	Kind           string        `json:"kind"`
	Field          string        `json:"field,omitempty"`
	Account        string        `json:"account,omitempty"`
	Until          int64         `json:"until,omitempty"`
	RetryAfterMs   int64         `json:"retryAfterMs,omitempty"`
	UpstreamStatus int           `json:"upstreamStatus,omitempty"`
	Class          verdict.Class `json:"class,omitempty"`
}

// noRouteData is the data of no_account_available: the NoRoute fields, so a
// host can synthesize the upstream-shaped 401/429, plus the kind.
type noRouteData struct {
	Kind string `json:"kind"`
	core.NoRoute
}

// sentinelKinds maps core sentinels to their wire kind and code, in the
// order they are tried.
var sentinelKinds = []struct {
	err  error
	kind string
	code int64
}{
	{core.ErrNoRoute, "no_account_available", CodeNoAccountAvailable},
	{core.ErrInvalidGrant, "invalid_grant", CodeInvalidGrant},
	{core.ErrRefreshBackoff, "refresh_backoff", CodeRefreshBackoff},
	{core.ErrQuotaBackoff, "quota_backoff", CodeQuotaBackoff},
	{core.ErrConfigInvalid, "config_invalid", CodeConfigInvalid},
	{core.ErrCorruptFile, "corrupt_file", CodeCorruptFile},
	{core.ErrNoAccount, "account_not_found", CodeAccountNotFound},
	{core.ErrLockTimeout, "lock_timeout", CodeLockTimeout},
	{core.ErrInProgress, "in_progress", CodeInProgress},
	{core.ErrNoMain, "main_not_set", CodeMainNotSet},
	{core.ErrLoginState, "login_state", CodeLoginState},
}

// toWireError is the one place that turns an error into a JSON-RPC error.
// Messages pass through secret.Redact as a last guard, though core errors are
// redacted already.
func toWireError(err error) *jsonrpc2.Error {
	msg := secret.Redact(err.Error())
	var (
		noRoute  *core.NoRouteError
		backoff  *core.BackoffError
		upstream *core.UpstreamError
		perr     *paramError
	)
	switch {
	case errors.As(err, &perr):
		return wireError(jsonrpc2.CodeInvalidParams, msg, errorData{Kind: "invalid_params", Field: perr.Field})
	case errors.Is(err, errInvalidParams):
		return wireError(jsonrpc2.CodeInvalidParams, msg, errorData{Kind: "invalid_params"})
	case errors.Is(err, errInvalidRequest):
		return wireError(jsonrpc2.CodeInvalidRequest, msg, errorData{Kind: "invalid_request"})
	case errors.Is(err, errMethodNotFound):
		return wireError(jsonrpc2.CodeMethodNotFound, msg, errorData{Kind: "method_not_found"})
	case errors.Is(err, errNotInitialized):
		return wireError(codeServerNotInitialized, msg, errorData{Kind: "not_initialized"})
	case errors.Is(err, errCancelled), errors.Is(err, context.Canceled):
		return wireError(codeRequestCancelled, "request cancelled", errorData{Kind: "cancelled"})
	case errors.Is(err, errInternal):
		return wireError(jsonrpc2.CodeInternalError, msg, errorData{Kind: "internal"})
	case errors.As(err, &noRoute):
		return wireError(CodeNoAccountAvailable, msg, noRouteData{Kind: "no_account_available", NoRoute: noRoute.NoRoute})
	case errors.As(err, &backoff):
		d := errorData{Kind: "refresh_backoff", Account: backoff.Account, Until: ms(backoff.Until)}
		code := int64(CodeRefreshBackoff)
		if errors.Is(backoff.Kind, core.ErrQuotaBackoff) {
			d.Kind, code = "quota_backoff", CodeQuotaBackoff
		}
		if left := backoff.Until.Sub(backoff.Now); left > 0 {
			d.RetryAfterMs = left.Milliseconds()
		}
		if backoff.Record != nil {
			d.UpstreamStatus, d.Class = backoff.Record.Status, backoff.Record.Class
		}
		return wireError(code, msg, d)
	case errors.As(err, &upstream):
		d := errorData{Kind: "upstream_error", Account: upstream.Account, Until: ms(upstream.Until),
			RetryAfterMs: upstream.Verdict.RetryAfterMs(), UpstreamStatus: upstream.Failure.Status, Class: upstream.Verdict.Class}
		code := int64(CodeUpstreamError)
		if upstream.Verdict.Class == verdict.ClassInvalidGrant {
			d.Kind, code = "invalid_grant", CodeInvalidGrant
		}
		return wireError(code, msg, d)
	}
	for _, s := range sentinelKinds {
		if errors.Is(err, s.err) {
			return wireError(s.code, msg, errorData{Kind: s.kind})
		}
	}
	return wireError(jsonrpc2.CodeInternalError, msg, errorData{Kind: "internal"})
}

func wireError(code int64, msg string, data any) *jsonrpc2.Error {
	e := &jsonrpc2.Error{Code: code, Message: msg}
	if b, err := json.Marshal(data); err == nil {
		raw := json.RawMessage(b)
		e.Data = &raw
	}
	return e
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
