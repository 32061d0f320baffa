package core

import "context"

// served reports whether req reports a served response: a 2xx that is
// neither a rate_limit_error in the stream nor a transport failure. Only
// that case is answered without a classification.
func (req ReportRequest) served() bool {
	return !req.Network && req.Status >= 200 && req.Status < 300 && !req.StreamRateLimit
}

// TryReport is [Engine.Report] for a caller that must not wait (the RPC
// server's read goroutine). It answers a served report (a 2xx that is not
// a stream rate limit or a network failure) from memory: the ticket, the
// cached snapshot, and an observation (header quota, lastUsed) applied in
// memory and written behind. It returns ErrWouldWait, having changed
// nothing, for every other report (a failure is classified, and may
// refresh, poll or select), when the store writes observations at once
// (negative StoreOptions.WriteBehind), and when any step would wait (the
// files' stamps are due a look, the snapshot must be read again). It runs
// Report's code, so the two answers cannot drift apart.
//
// The observation is the last step of a served report and refuses before
// it changes anything, so a refusal never follows a side effect.
func (e *Engine) TryReport(req ReportRequest) (*ReportResult, error) {
	if !req.served() || e.store.interval < 0 {
		return nil, ErrWouldWait
	}
	return runNoWait(func(ctx context.Context) (*ReportResult, error) { return e.Report(ctx, req) })
}
