package core

import (
	"context"
	"errors"
	"time"

	"github.com/acctpool/acctpool/core/verdict"
)

// upstreamError builds the error returned for a classified failure.
func upstreamError(account string, f verdict.Failure, v verdict.Verdict, until time.Time) *UpstreamError {
	return &UpstreamError{Account: account, Failure: f, Verdict: v, Until: until}
}

// isCanceled reports whether err is a context cancellation or deadline.
func isCanceled(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
