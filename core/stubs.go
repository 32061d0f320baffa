package core

import (
	"context"
	"errors"
)

// TODO(core): temporary stubs, replaced as routing lands.
var errNotImplemented = errors.New("not implemented yet")

// Select picks the account for the next request.
func (e *Engine) Select(ctx context.Context, req SelectRequest) (*Route, error) {
	return nil, errNotImplemented
}

// Report takes the response outcome and decides what to do next.
func (e *Engine) Report(ctx context.Context, req ReportRequest) (*ReportResult, error) {
	return nil, errNotImplemented
}
