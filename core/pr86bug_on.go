//go:build acctpool_pr86bug

package core

// pr86Bug is true only in the deliberately broken test build: a
// token-endpoint 403 inside a quota pass records nothing, as upstream did.
const pr86Bug = true
