package millis

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDuration(t *testing.T) {
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
		{"largest convertible", Max, 0, math.MaxInt64, time.Duration(Max) * time.Millisecond, false},
		{"would overflow", Max + 1, 0, math.MaxInt64, 0, true},
		{"negative allowed", -5, -10, 10, -5 * time.Millisecond, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Duration("f", c.ms, c.min, c.max)
			if c.wantErr {
				var re *RangeError
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
