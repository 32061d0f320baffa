package conformance

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pr86Case is the token-endpoint 403 case of conformance-cases.md (case 26).
const pr86Case = "token-403-in-quota-pass-arms-refresh-backoff"

// TestPR86Bug_isCaught proves the suite catches upstream's PR #86 bug: a
// server built with -tags acctpool_pr86bug (core swallows a token-endpoint
// 403 inside a quota pass, as upstream did) fails the case, and the normal
// build passes it.
func TestPR86Bug_isCaught(t *testing.T) {
	var c *Case
	for _, k := range embeddedCases(t) {
		if k.ID == pr86Case {
			c = k
		}
	}
	require.NotNil(t, c, "case %s is missing", pr86Case)
	run := func(bin string) Result {
		// Pending marks must not hide the outcome here.
		k := *c
		k.Pending = ""
		return RunCase(context.Background(), Options{Server: []string{bin}}, &k)
	}

	broken := run(buildServer(t, "acctpool_pr86bug"))
	assert.Equal(t, StatusFailed, broken.Status, "the PR #86 build must fail %s", pr86Case)
	t.Logf("with the bug: %v", broken.Failures)
	assert.Contains(t, strings.Join(broken.Failures, "\n"), "lastRefreshError",
		"the bug build must fail on the missing refresh error, not on something else")
	require.NotEmpty(t, broken.Diff, "the failure must come with a want/got diff")
	assert.True(t, strings.HasSuffix(broken.Diff[0].Path, ".lastRefreshError"), "diff path %q", broken.Diff[0].Path)
	assert.True(t, broken.Diff[0].Missing, "the bug build writes no lastRefreshError at all")
	assert.Regexp(t, `^step \d+ \(check\)$`, broken.Step, "the failure names its step")

	fixed := run(buildServer(t))
	assert.Equal(t, StatusPassed, fixed.Status, "the normal build must pass %s: %v", pr86Case, fixed.Failures)
}
