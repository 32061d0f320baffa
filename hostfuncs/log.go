package hostfuncs

import (
	"context"
	"log/slog"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tetratelabs/wazero/api"
)

// Limits of env.errclass_log. A line is cut to MaxLogLineBytes; one
// classification call may log at most MaxLogLinesPerCall lines and
// MaxLogBytesPerCall bytes. Lines past either limit are dropped and counted
// in the call's [CallLog].
const (
	MaxLogLineBytes    = 1024
	MaxLogLinesPerCall = 16
	MaxLogBytesPerCall = 4096
)

// logLevels maps the ABI's levels 0..3 to slog levels; out-of-range values
// are clamped.
var logLevels = [...]slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError}

// CallLog is the log allowance of one guest call: how many lines and bytes
// env.errclass_log has accepted, and how many lines it dropped.
//
// # Notes
//
// The caller owns it and attaches it to the context of each guest call with
// [WithCallLog], after [CallLog.Reset]; the limits therefore apply per
// classification call, whichever pooled instance serves it. A guest call
// whose context carries no CallLog (for example one made by a caller that
// forgot it) may not log at all: deny by default.
//
// The caller also sets, once, the redaction every line passes through
// ([CallLog.SetRedact]): hostfuncs cannot know the secrets, the caller
// does. Reset keeps it.
type CallLog struct {
	lines, bytes, dropped int
	redact                func(string) string
}

// Reset gives c a fresh allowance for the next call. The redaction set by
// SetRedact stays.
func (c *CallLog) Reset() { *c = CallLog{redact: c.redact} }

// SetRedact makes every line logged under c pass through redact (which
// must replace credentials, e.g. secret.Redact with the known secrets)
// before it is cut to MaxLogLineBytes and logged. A nil redact logs lines
// as the guest wrote them, sanitised only.
func (c *CallLog) SetRedact(redact func(string) string) { c.redact = redact }

// Dropped reports how many lines the call lost to the per-call limits or
// to an out-of-bounds pointer.
func (c *CallLog) Dropped() int { return c.dropped }

// Lines reports how many lines the call logged.
func (c *CallLog) Lines() int { return c.lines }

type callLogKey struct{}

// WithCallLog returns ctx carrying c, the allowance env.errclass_log
// charges during a guest call made with that context.
func WithCallLog(ctx context.Context, c *CallLog) context.Context {
	return context.WithValue(ctx, callLogKey{}, c)
}

// logger implements env.errclass_log(level i32, ptr i32, len i32) for one
// plugin. It holds no per-call state: that lives in the call's CallLog.
type logger struct {
	log *slog.Logger
	id  string
}

func (l *logger) errclassLog(ctx context.Context, mod api.Module, stack []uint64) {
	budget, _ := ctx.Value(callLogKey{}).(*CallLog)
	if budget == nil {
		return
	}
	level := int32(stack[0])
	ptr, n := uint32(stack[1]), uint32(stack[2])
	truncated := false
	if n > MaxLogLineBytes {
		n, truncated = MaxLogLineBytes, true
	}
	if budget.lines >= MaxLogLinesPerCall || budget.bytes+int(n) > MaxLogBytesPerCall {
		budget.dropped++
		return
	}
	// Read a little past the cut, so redaction sees a credential that
	// straddles it whole and no prefix of it survives the cut.
	mem := mod.Memory()
	view := min(uint32(stack[2]), MaxLogLineBytes+redactSlack)
	if size := mem.Size(); uint64(ptr)+uint64(view) > uint64(size) && ptr <= size {
		view = max(size-ptr, n) // the part past the cut may not exist
	}
	raw, ok := mem.Read(ptr, view)
	if !ok {
		budget.dropped++
		return
	}
	budget.lines++
	budget.bytes += int(n)
	lvl := logLevels[min(max(level, 0), int32(len(logLevels)-1))]
	if l.log == nil || !l.log.Enabled(ctx, lvl) {
		return
	}
	line := Sanitize(raw)
	if budget.redact != nil {
		line = budget.redact(line)
	}
	if len(line) > MaxLogLineBytes {
		line, truncated = cutUTF8(line, MaxLogLineBytes), true
	}
	l.log.Log(ctx, lvl, "plugin log", "plugin", l.id, "line", line, "truncated", truncated)
}

// redactSlack is how far past MaxLogLineBytes a line is read for
// redaction.
const redactSlack = 4 << 10

// cutUTF8 shortens s to at most n bytes at a rune start.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Sanitize returns raw as one printable line: invalid UTF-8 becomes U+FFFD
// and control and format characters (newlines, escapes, bidi overrides) are
// dropped, so guest text cannot forge log records or terminal output.
func Sanitize(raw []byte) string {
	var sb strings.Builder
	sb.Grow(len(raw))
	for len(raw) > 0 {
		r, size := utf8.DecodeRune(raw)
		raw = raw[size:]
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
