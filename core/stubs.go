package core

import (
	"context"
	"errors"
	"net/http"

	json "github.com/goccy/go-json"
)

// TODO(core): temporary stubs, replaced file by file as the engine grows.
var errNotImplemented = errors.New("not implemented yet")


// ListAccounts returns every account, main first, never with credentials.
func (e *Engine) ListAccounts(ctx context.Context) ([]AccountView, error) {
	return nil, errNotImplemented
}

// GetAccount returns one account by id or label ("main" for the host's).
func (e *Engine) GetAccount(ctx context.Context, id string) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// AddAccount adds (or, same id or label, replaces) a fallback account.
func (e *Engine) AddAccount(ctx context.Context, spec AccountSpec) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// RemoveAccount removes a fallback account and its state.
func (e *Engine) RemoveAccount(ctx context.Context, id string) error { return errNotImplemented }

// UpdateAccount changes label, enabled, position or API route settings.
func (e *Engine) UpdateAccount(ctx context.Context, p AccountPatch) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// SetMain hands over the host's main credentials.
func (e *Engine) SetMain(ctx context.Context, c MainCredentials) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// RefreshAccount forces one token refresh of an account ("main" allowed).
func (e *Engine) RefreshAccount(ctx context.Context, id string) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// RefreshDue runs one background refresh pass over due accounts.
func (e *Engine) RefreshDue(ctx context.Context) (PassSummary, error) {
	return PassSummary{}, errNotImplemented
}

// ResetBackoff clears an account's refresh and quota backoff.
func (e *Engine) ResetBackoff(ctx context.Context, id string) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// Quota returns the stored snapshots; id "" means every account.
func (e *Engine) Quota(ctx context.Context, id string) ([]AccountView, error) {
	return nil, errNotImplemented
}

// RefreshQuota fetches an account's quota now.
func (e *Engine) RefreshQuota(ctx context.Context, id string) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// RefreshQuotaDue runs one background quota pass over due accounts.
func (e *Engine) RefreshQuotaDue(ctx context.Context) (PassSummary, error) {
	return PassSummary{}, errNotImplemented
}

// ObserveHeaders harvests anthropic-ratelimit-unified-* headers.
func (e *Engine) ObserveHeaders(ctx context.Context, id string, h http.Header) (AccountView, error) {
	return AccountView{}, errNotImplemented
}

// Select picks the account for the next request.
func (e *Engine) Select(ctx context.Context, req SelectRequest) (*Route, error) {
	return nil, errNotImplemented
}

// Report takes the response outcome and decides what to do next.
func (e *Engine) Report(ctx context.Context, req ReportRequest) (*ReportResult, error) {
	return nil, errNotImplemented
}

// Config returns the config file's settings section as JSON objects.
func (e *Engine) Config(ctx context.Context) (map[string]json.RawMessage, error) {
	return nil, errNotImplemented
}

// UpdateConfig merges top-level settings keys into the config file.
func (e *Engine) UpdateConfig(ctx context.Context, patch map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	return nil, errNotImplemented
}
