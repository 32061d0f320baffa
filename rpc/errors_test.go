package rpc

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/verdict"
)

func TestToWireError(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	until := now.Add(90 * time.Second)
	cases := []struct {
		name string
		err  error
		code int64
		data string
	}{
		{"no route", &core.NoRouteError{NoRoute: core.NoRoute{Status: 429, ErrorType: "rate_limit_error", Message: "all limited", RetryAfterMs: 5000,
			Accounts: []core.AccountReason{{AccountID: "a", Reason: "quota", Until: 7}}}},
			CodeNoAccountAvailable, `{"kind":"no_account_available","status":429,"errorType":"rate_limit_error","message":"all limited","retryAfterMs":5000,"accounts":[{"accountId":"a","reason":"quota","until":7}]}`},
		{"bare no route", fmt.Errorf("select: %w", core.ErrNoRoute), CodeNoAccountAvailable, `{"kind":"no_account_available"}`},
		{"refresh backoff", &core.BackoffError{Account: "a", Kind: core.ErrRefreshBackoff, Record: &record.OpError{Message: "m", Status: 403, Class: verdict.ClassOrgPolicy}, Until: until, Now: now},
			CodeRefreshBackoff, `{"kind":"refresh_backoff","account":"a","until":1700000090000,"retryAfterMs":90000,"upstreamStatus":403,"class":"org_policy"}`},
		{"quota backoff", &core.BackoffError{Account: "b", Kind: core.ErrQuotaBackoff, Record: &record.OpError{Message: "m", Status: 429}, Until: until, Now: now},
			CodeQuotaBackoff, `{"kind":"quota_backoff","account":"b","until":1700000090000,"retryAfterMs":90000,"upstreamStatus":429}`},
		{"upstream", &core.UpstreamError{Account: "c", Failure: verdict.Failure{Source: verdict.SourceToken, Status: 503}, Verdict: verdict.Verdict{Class: verdict.ClassTransient, RetryAfter: 2 * time.Second}, Until: until},
			CodeUpstreamError, `{"kind":"upstream_error","account":"c","until":1700000090000,"retryAfterMs":2000,"upstreamStatus":503,"class":"transient"}`},
		{"upstream invalid_grant", &core.UpstreamError{Account: "d", Failure: verdict.Failure{Source: verdict.SourceToken, Status: 400}, Verdict: verdict.Verdict{Class: verdict.ClassInvalidGrant}},
			CodeInvalidGrant, `{"kind":"invalid_grant","account":"d","upstreamStatus":400,"class":"invalid_grant"}`},
		{"invalid grant", core.ErrInvalidGrant, CodeInvalidGrant, `{"kind":"invalid_grant"}`},
		{"config", fmt.Errorf("%w: bad threshold", core.ErrConfigInvalid), CodeConfigInvalid, `{"kind":"config_invalid"}`},
		{"corrupt", core.ErrCorruptFile, CodeCorruptFile, `{"kind":"corrupt_file"}`},
		{"no account", core.ErrNoAccount, CodeAccountNotFound, `{"kind":"account_not_found"}`},
		{"lock", core.ErrLockTimeout, CodeLockTimeout, `{"kind":"lock_timeout"}`},
		{"in progress", core.ErrInProgress, CodeInProgress, `{"kind":"in_progress"}`},
		{"no main", core.ErrNoMain, CodeMainNotSet, `{"kind":"main_not_set"}`},
		{"login state", core.ErrLoginState, CodeLoginState, `{"kind":"login_state"}`},
		{"params", required("id"), -32602, `{"kind":"invalid_params","field":"id"}`},
		{"cancelled", errCancelled, -32800, `{"kind":"cancelled"}`},
		{"not initialized", errNotInitialized, -32002, `{"kind":"not_initialized"}`},
		{"unknown", fmt.Errorf("surprise"), -32603, `{"kind":"internal"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := toWireError(tc.err)
			assert.Equal(t, tc.code, w.Code)
			if tc.code <= -32000 && tc.code >= -32768 {
				assert.Contains(t, []int64{-32600, -32601, -32602, -32603, -32700, -32002, -32800}, tc.code)
			}
			require.NotNil(t, w.Data)
			assert.JSONEq(t, tc.data, string(*w.Data))
		})
	}
}

func TestToWireError_domainCodesOutsideReservedBlock(t *testing.T) {
	for _, s := range sentinelKinds {
		assert.False(t, s.code >= -32768 && s.code <= -32000, "%s uses a reserved code", s.kind)
	}
}

func TestToWireError_redactsMessages(t *testing.T) {
	w := toWireError(fmt.Errorf("%w: upstream said Bearer sk-ant-oat01-SECRETSECRET", core.ErrConfigInvalid))
	assert.NotContains(t, w.Message, "SECRETSECRET")
	b, _ := json.Marshal(w)
	assert.NotContains(t, string(b), "SECRETSECRET")
}
