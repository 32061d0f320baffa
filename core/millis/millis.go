package millis

import (
	"fmt"
	"math"
	"time"
)

// Max is the largest millisecond count that converts to a
// [time.Duration] without overflow (about 292 years).
const Max = math.MaxInt64 / int64(time.Millisecond)

// RangeError says that a millisecond field was outside the range its
// reader accepts. Field names the field as the caller's input spells it
// (an RPC param, a manifest key, a plugin output key), so the error can be
// shown to whoever wrote the value.
type RangeError struct {
	Field string // the field's name, e.g. "ms" or "limits.callTimeoutMs"
	Value int64  // the value found
	Min   int64  // the smallest accepted value
	Max   int64  // the largest accepted value
}

// Error names the field, the value and the accepted range.
func (e *RangeError) Error() string {
	return fmt.Sprintf("%s: %d ms is out of range (%d..%d)", e.Field, e.Value, e.Min, e.Max)
}

// Duration is the one conversion of a millisecond count read from
// outside (RPC params, plugin output, manifests, config) into a
// [time.Duration]. It checks ms against min..max (max is capped at
// [Max]) before multiplying, so no input can wrap around into a
// negative or tiny duration. Out of range is a *[RangeError].
func Duration(field string, ms, min, max int64) (time.Duration, error) {
	if max > Max {
		max = Max
	}
	if ms < min || ms > max {
		return 0, &RangeError{Field: field, Value: ms, Min: min, Max: max}
	}
	return time.Duration(ms) * time.Millisecond, nil
}
