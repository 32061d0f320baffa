package abi

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDecodeOutputRetryAfterRange: retryAfterMs is range-checked before
// it becomes a duration; values that used to wrap (18446744073710 ms was
// 0.448 ms) are a bad output naming the field and the range.
func TestDecodeOutputRetryAfterRange(t *testing.T) {
	cases := []struct {
		ms   string
		want time.Duration
		err  string
	}{
		{"0", 0, ""},
		{"1500", 1500 * time.Millisecond, ""},
		{"86400000", MaxRetryAfter, ""},
		{"86400001", 0, "retryAfterMs: 86400001 ms is out of range (0..86400000)"},
		{"18446744073710", 0, "retryAfterMs: 18446744073710 ms is out of range (0..86400000)"},
		{"9223372036855", 0, "retryAfterMs: 9223372036855 ms is out of range (0..86400000)"},
		{"9223372036854775807", 0, "retryAfterMs: 9223372036854775807 ms is out of range"},
		{"-1", 0, "retryAfterMs: -1 ms is out of range"},
		{"-9223372036854775808", 0, "out of range"},
		{"18446744073709551616", 0, "not a JSON object"},
		{"1.5", 0, "not a JSON object"},
	}
	for _, tc := range cases {
		t.Run(tc.ms, func(t *testing.T) {
			out, err := DecodeOutput([]byte(`{"class":"rate_limited","retryAfterMs":` + tc.ms + `}`))
			if tc.err != "" {
				require.ErrorIs(t, err, ErrOutput)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, out.RetryAfter)
			assert.Equal(t, tc.want, *out.RetryAfter)
		})
	}
}
