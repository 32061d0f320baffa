//go:build !acctpool_pr86bug

package core

// pr86Bug is false in every real build. The acctpool_pr86bug build tag
// turns it on to put back upstream's PR #86 bug, so the conformance suite
// can prove that its token-endpoint 403 case catches it.
const pr86Bug = false
