package abi

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core/millis"
	"github.com/acctpool/acctpool/core/verdict"
)

// Output limits of the ABI.
const (
	// MaxReason is the most bytes of a guest's reason that are kept.
	MaxReason = 256
	// MaxRetryAfter is the longest retry-after a guest may ask for.
	MaxRetryAfter = 24 * time.Hour
)

// ErrOutput marks every problem with a guest's output JSON.
var ErrOutput = errors.New("bad output")

// Output is a guest's decoded answer. RetryAfter is nil when the guest left
// retryAfterMs out, so the built-in value stands.
type Output struct {
	Class      verdict.Class
	RetryAfter *time.Duration
	Reason     string
}

type wireOutput struct {
	Class        *string `json:"class"`
	RetryAfterMs *int64  `json:"retryAfterMs"`
	Reason       *string `json:"reason"`
}

// DecodeOutput decodes and checks a guest's output JSON. Unknown keys are
// ignored, so later minor versions of the ABI stay readable; a missing or
// unknown class, a negative or huge retryAfterMs, or malformed JSON is an
// error wrapping [ErrOutput]. A reason longer than [MaxReason] is cut.
func DecodeOutput(b []byte) (Output, error) {
	var w wireOutput
	if err := json.Unmarshal(b, &w); err != nil {
		return Output{}, fmt.Errorf("%w: not a JSON object: %s", ErrOutput, firstLine(err.Error()))
	}
	var out Output
	switch {
	case w.Class == nil:
		return out, fmt.Errorf("%w: class missing", ErrOutput)
	case !verdict.Class(*w.Class).Valid():
		return out, fmt.Errorf("%w: unknown class %q", ErrOutput, cutString(*w.Class, 64))
	}
	out.Class = verdict.Class(*w.Class)
	if w.RetryAfterMs != nil {
		// Range-checked before the multiplication, so no value wraps
		// around into a small or negative duration.
		d, err := millis.Duration("retryAfterMs", *w.RetryAfterMs, 0, MaxRetryAfter.Milliseconds())
		if err != nil {
			return Output{}, fmt.Errorf("%w: %w", ErrOutput, err)
		}
		out.RetryAfter = &d
	}
	if w.Reason != nil {
		out.Reason = cutString(*w.Reason, MaxReason)
	}
	return out, nil
}

// cutString shortens s to at most n bytes, backing up to a rune start.
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return cutString(s, 200)
}
