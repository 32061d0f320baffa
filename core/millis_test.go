package core

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMillisDuration(t *testing.T) {
	cases := []struct {
		name     string
		ms       int64
		min, max int64
		want     time.Duration
		wantErr  bool
	}{
		{"zero", 0, 0, 1000, 0, false},
		{"in range", 250, 0, 1000, 250 * time.Millisecond, false},
		{"at max", 1000, 0, 1000, time.Second, false},
		{"above max", 1001, 0, 1000, 0, true},
		{"below min", -1, 0, 1000, 0, true},
		{"largest convertible", MaxMillis, 0, math.MaxInt64, time.Duration(MaxMillis) * time.Millisecond, false},
		{"would overflow", MaxMillis + 1, 0, math.MaxInt64, 0, true},
		{"negative allowed", -5, -10, 10, -5 * time.Millisecond, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := MillisDuration("f", c.ms, c.min, c.max)
			if c.wantErr {
				var re *MillisRangeError
				require.True(t, errors.As(err, &re), "err = %v", err)
				assert.Equal(t, "f", re.Field)
				assert.Equal(t, c.ms, re.Value)
				assert.Contains(t, err.Error(), "out of range")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestVerdictUnmarshal_retryAfterRange(t *testing.T) {
	var v Verdict
	require.NoError(t, v.UnmarshalJSON([]byte(`{"class":"rate_limited","retryAfterMs":1500}`)))
	assert.Equal(t, 1500*time.Millisecond, v.RetryAfter)
	for _, bad := range []string{`{"class":"rate_limited","retryAfterMs":-1}`, `{"class":"rate_limited","retryAfterMs":9223372036855}`} {
		var w Verdict
		var re *MillisRangeError
		assert.True(t, errors.As(w.UnmarshalJSON([]byte(bad)), &re), bad)
	}
}
