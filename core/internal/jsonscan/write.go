package jsonscan

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// Writer appends JSON to a buffer, compact or indented, writing each
// value once. Its output is byte for byte what goccy/go-json's Marshal
// (compact) and MarshalIndent(v, "", indent) give for the same fields in
// the same order: HTML-safe string escapes, encoding/json's float format,
// raw values compacted or re-indented with their strings' <, > and &
// escaped.
//
// Use: Open('{'), then per member Key and a value, then Close('}'); the
// writer puts the commas, newlines and indentation.
type Writer struct {
	buf    []byte
	indent string // "" for compact
	depth  int
	first  bool // nothing written yet in the innermost open container
	// afterKey is set between a Key and its value.
	afterKey bool
	// pad is a newline and indentation for the deepest level so far.
	pad []byte
}

// NewWriter returns a writer; indent is the unit of indentation ("" for
// compact output).
func NewWriter(indent string) *Writer { return &Writer{indent: indent} }

// NewWriterSize is NewWriter with room for size bytes, so that a document
// of about that size is written without growing the buffer.
func NewWriterSize(indent string, size int) *Writer {
	return &Writer{indent: indent, buf: make([]byte, 0, size)}
}

// Bytes returns what was written.
func (w *Writer) Bytes() []byte { return w.buf }

func (w *Writer) newline() {
	n := 1 + w.depth*len(w.indent)
	for len(w.pad) < n {
		if len(w.pad) == 0 {
			w.pad = append(w.pad, '\n')
		}
		w.pad = append(w.pad, w.indent...)
	}
	w.buf = append(w.buf, w.pad[:n]...)
}

// beforeValue writes the separator a value (or key) needs.
func (w *Writer) beforeValue() {
	if w.afterKey {
		w.afterKey = false
		return
	}
	if w.depth == 0 {
		return
	}
	if !w.first {
		w.buf = append(w.buf, ',')
	}
	w.first = false
	if w.indent != "" {
		w.newline()
	}
}

// Open starts an object ('{') or an array ('[').
func (w *Writer) Open(c byte) {
	w.beforeValue()
	w.buf = append(w.buf, c)
	w.depth++
	w.first = true
}

// Close ends the innermost object ('}') or array (']').
func (w *Writer) Close(c byte) {
	w.depth--
	if !w.first && w.indent != "" {
		w.newline()
	}
	w.first = false
	w.buf = append(w.buf, c)
}

// Key writes an object key; a value must follow.
func (w *Writer) Key(k string) {
	w.beforeValue()
	w.buf = appendString(w.buf, k)
	w.buf = append(w.buf, ':')
	if w.indent != "" {
		w.buf = append(w.buf, ' ')
	}
	w.afterKey = true
}

// String writes a string.
func (w *Writer) String(v string) {
	w.beforeValue()
	w.buf = appendString(w.buf, v)
}

// Int writes an integer.
func (w *Writer) Int(v int64) {
	w.beforeValue()
	w.buf = strconv.AppendInt(w.buf, v, 10)
}

// Float writes a float as encoding/json does; NaN and infinities, which
// JSON cannot hold, are written as null.
func (w *Writer) Float(f float64) {
	w.beforeValue()
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.buf = append(w.buf, "null"...)
		return
	}
	w.buf = appendFloat(w.buf, f)
}

// Bool writes a boolean.
func (w *Writer) Bool(v bool) {
	w.beforeValue()
	w.buf = strconv.AppendBool(w.buf, v)
}

// Null writes null.
func (w *Writer) Null() {
	w.beforeValue()
	w.buf = append(w.buf, "null"...)
}

// Raw writes raw, a valid JSON value, re-formatted to the writer's layout.
// Invalid raw is an error: nothing the scanner did not accept is written.
func (w *Writer) Raw(raw []byte) error {
	w.beforeValue()
	start := len(w.buf)
	s := Scanner{data: raw}
	var err error
	if err = w.copyValue(&s); err == nil {
		err = s.End()
	}
	if err != nil {
		w.buf = w.buf[:start]
	}
	return err
}

// copyValue copies the scanner's next value to the layout of w.
func (w *Writer) copyValue(s *Scanner) error {
	switch s.Peek() {
	case Object:
		w.buf = append(w.buf, '{')
		w.depth++
		n := 0
		err := s.Object(func([]byte) error {
			if n > 0 {
				w.buf = append(w.buf, ',')
			}
			n++
			if w.indent != "" {
				w.newline()
			}
			w.buf = appendHTMLSafe(w.buf, s.rawKey())
			w.buf = append(w.buf, ':')
			if w.indent != "" {
				w.buf = append(w.buf, ' ')
			}
			return w.copyValue(s)
		})
		w.depth--
		if err != nil {
			return err
		}
		if n > 0 && w.indent != "" {
			w.newline()
		}
		w.buf = append(w.buf, '}')
		return nil
	case Array:
		w.buf = append(w.buf, '[')
		w.depth++
		n := 0
		err := s.Array(func() error {
			if n > 0 {
				w.buf = append(w.buf, ',')
			}
			n++
			if w.indent != "" {
				w.newline()
			}
			return w.copyValue(s)
		})
		w.depth--
		if err != nil {
			return err
		}
		if n > 0 && w.indent != "" {
			w.newline()
		}
		w.buf = append(w.buf, ']')
		return nil
	case String:
		// Copied as written, only <, >, & and U+2028/9 escaped, as
		// goccy/go-json's compaction of raw values does.
		start := s.pos
		if err := s.skipString(); err != nil {
			return err
		}
		w.buf = appendHTMLSafe(w.buf, s.data[start:s.pos])
		return nil
	default:
		raw, err := s.Raw()
		if err != nil {
			return err
		}
		w.buf = append(w.buf, raw...)
		return nil
	}
}

// appendHTMLSafe appends a string literal as it is, with <, > and & and
// the line and paragraph separators escaped.
func appendHTMLSafe(b, lit []byte) []byte {
	last := 0
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c == '<' || c == '>' || c == '&' {
			b = append(b, lit[last:i]...)
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			last = i + 1
		}
		if c == 0xE2 && i+2 < len(lit) && lit[i+1] == 0x80 && lit[i+2]&^1 == 0xA8 {
			b = append(b, lit[last:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[lit[i+2]&0xF])
			last = i + 3
		}
	}
	return append(b, lit[last:]...)
}

const hexDigits = "0123456789abcdef"

// safe marks the ASCII bytes a string can hold as they are (HTML-safe).
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	i := 0
	// Eight bytes at a time while all are printable ASCII needing no
	// escape (the common case: ids, tokens, timestamps).
	for i+8 <= len(s) {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		if (x|hasLess(x, 0x20)|hasZero(x^(lsb*'"'))|hasZero(x^(lsb*'\\'))|
			hasZero(x^(lsb*'<'))|hasZero(x^(lsb*'>'))|hasZero(x^(lsb*'&')))&msb != 0 {
			break
		}
		i += 8
	}
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendFloat is encoding/json's float64 format.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
