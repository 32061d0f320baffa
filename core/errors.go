package core

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
)

// Sentinel errors of core. Callers match them with errors.Is; the RPC layer
// maps each to a domain error kind.
var (
	// ErrCorruptFile means a file exists but cannot be parsed. It is never
	// overwritten; the user must fix or remove it.
	ErrCorruptFile = filestore.ErrCorruptFile
	// ErrLockTimeout means a cross-process lock stayed busy too long.
	ErrLockTimeout = filestore.ErrLockTimeout
	// ErrNoAccount means no account has the given id or label.
	ErrNoAccount = errors.New("no such account")
	// ErrNoRoute means no account can serve the request now.
	ErrNoRoute = errors.New("no account available")
	// ErrConfigInvalid means a setting or an argument is malformed.
	ErrConfigInvalid = errors.New("invalid configuration")
	// ErrRefreshBackoff means a refresh is latched by an earlier failure.
	ErrRefreshBackoff = errors.New("refresh backed off")
	// ErrQuotaBackoff means quota checks are latched by an earlier failure.
	ErrQuotaBackoff = errors.New("quota backed off")
	// ErrInvalidGrant means the refresh token was rejected for good.
	ErrInvalidGrant = errors.New("invalid_grant")
	// ErrInProgress means another process holds the work and did not finish
	// in time.
	ErrInProgress = errors.New("already in progress")
	// ErrNoMain means the host has not handed over main credentials.
	ErrNoMain = errors.New("main account credentials not set")
	// ErrLoginState means a login finish did not match a started login.
	ErrLoginState = errors.New("unknown or expired login state")
	// ErrReadOnly is the answer of every write to a store opened with
	// StoreOptions.ReadOnly.
	ErrReadOnly = errors.New("the store was opened read-only")
)

// OpError kinds are also errors: UpstreamError is a failed upstream call with
// its verdict, returned by refresh and quota operations.
type UpstreamError struct {
	Account string
	Failure verdict.Failure
	Verdict verdict.Verdict
	// Until is when the armed backoff ends, if one was armed.
	Until time.Time
}

// Error implements error. The message is redacted.
func (e *UpstreamError) Error() string {
	var b strings.Builder
	switch e.Failure.Source {
	case verdict.SourceToken:
		b.WriteString("Claude OAuth refresh failed")
	case verdict.SourceUsage:
		b.WriteString("Claude quota check failed")
	default:
		b.WriteString("upstream request failed")
	}
	if e.Failure.Status != 0 {
		fmt.Fprintf(&b, ": %d", e.Failure.Status)
	}
	if e.Failure.Message != "" {
		b.WriteString(" — ")
		b.WriteString(e.Failure.Message)
	}
	return b.String()
}

// Unwrap lets errors.Is match ErrInvalidGrant for permanent refresh failures.
func (e *UpstreamError) Unwrap() error {
	if e.Verdict.Class == verdict.ClassInvalidGrant {
		return ErrInvalidGrant
	}
	return nil
}

// BackoffError is returned when an operation is refused because an earlier
// failure latched it. It carries the persisted record, so the refusal is not
// recorded again.
type BackoffError struct {
	Account string
	Kind    error // ErrRefreshBackoff or ErrQuotaBackoff
	Record  *record.OpError
	Until   time.Time
	Now     time.Time
}

// Error implements error in the upstream wording.
func (e *BackoffError) Error() string {
	secs := int64((e.Until.Sub(e.Now) + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	msg := ""
	if e.Record != nil {
		msg = e.Record.Message
	}
	if e.Kind == ErrQuotaBackoff {
		return fmt.Sprintf("Quota API backed off for %ds after: %s", secs, msg)
	}
	return fmt.Sprintf("Claude OAuth refresh is backed off for %ds after: %s", secs, msg)
}

// Unwrap returns the kind sentinel (and ErrInvalidGrant when permanent).
func (e *BackoffError) Unwrap() []error {
	errs := []error{e.Kind}
	if e.Record.IsPermanent() {
		errs = append(errs, ErrInvalidGrant)
	}
	return errs
}

// errorf wraps a sentinel with a detail message: "sentinel: detail".
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
