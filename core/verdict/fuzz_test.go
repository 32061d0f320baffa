package verdict

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The fuzz target of the Retry-After parser. `go test` runs its seeds
// (testdata/fuzz and the f.Add calls); scripts/fuzz runs it for a while.

var fuzzNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// FuzzParseRetryAfter: a Retry-After value, seconds or an HTTP date, gives
// a wait from 0 to maxRetryAfter in whole seconds, never a negative or
// wrapped-around one.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "0", "-1", "1.5", "1e9", "1e10", "NaN", "Inf", "Sat, 28 Nov 2026 12:00:30 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "garbage"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		d := parseRetryAfter(value, fuzzNow)
		assert.True(t, d >= 0 && d <= maxRetryAfter, "Retry-After %q gave %v", value, d)
		assert.Zero(t, d%time.Second, "Retry-After %q gave %v, not whole seconds", value, d)
	})
}
