package core

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/stretchr/testify/assert"
)

func TestTransientQuotaError(t *testing.T) {
	assert.True(t, transientQuotaError(&UpstreamError{Failure: verdict.Failure{Source: verdict.SourceUsage}, Verdict: verdict.Verdict{Class: verdict.ClassRateLimited}}))
	assert.False(t, transientQuotaError(&UpstreamError{Failure: verdict.Failure{Source: verdict.SourceToken}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}}))
	assert.True(t, transientQuotaError(&BackoffError{Kind: ErrQuotaBackoff}))
	assert.True(t, transientQuotaError(ErrInProgress))
	assert.False(t, transientQuotaError(errors.New("other")))
}

func TestFailureOf(t *testing.T) {
	until := policyNow.Add(5 * time.Minute)
	assert.False(t, failureOf(nil).Failed)

	token := &UpstreamError{Failure: verdict.Failure{Source: verdict.SourceToken, Status: 503}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}, Until: until}
	f := failureOf(token)
	assert.True(t, f.Failed)
	assert.Equal(t, token.Error(), f.Message)
	assert.True(t, until.Equal(f.Until))
	assert.False(t, f.Transient, "a token failure says something about the account")
	assert.False(t, f.NeedsRelogin)

	usage := failureOf(&UpstreamError{Failure: verdict.Failure{Source: verdict.SourceUsage, Status: 503}, Verdict: verdict.Verdict{Class: verdict.ClassTransient}})
	assert.True(t, usage.Transient)

	backoff := failureOf(&BackoffError{Kind: ErrRefreshBackoff, Until: until})
	assert.True(t, until.Equal(backoff.Until))

	assert.True(t, failureOf(fmt.Errorf("refresh: %w", ErrInvalidGrant)).NeedsRelogin)
}
