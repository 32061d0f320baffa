// Package jsonscan reads and writes JSON in one pass over one byte slice,
// for decoders and encoders written by hand for known document shapes.
//
// A [Scanner] walks a JSON text: it iterates an object's keys and an
// array's elements, decodes strings, numbers, booleans and null, and skips
// or captures a value raw (a sub-slice of the input, never copied, never
// scanned again). Syntax is checked as the bytes are read; a syntax error
// is a [*SyntaxError] with the byte offset, so a caller can name the line
// and column. A value of valid syntax but the wrong kind for what was asked
// is a [*TypeError], returned only after the whole value has been read, so
// the caller can keep going (and keep the value raw) after it.
//
// A [Writer] builds JSON the way goccy/go-json (and encoding/json) write
// it, compact or indented: strings with HTML-safe escapes, floats in the
// shortest form that reads back, raw values re-formatted as they are copied.
//
// Semantics follow encoding/json: invalid UTF-8 and lone surrogates in a
// string decode to U+FFFD, an integer is a number that strconv.ParseInt
// accepts, a float one that strconv.ParseFloat accepts within range.
package jsonscan

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Kind is the kind of a JSON value, as told by its first byte.
type Kind uint8

// The kinds of JSON values.
const (
	Invalid Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"invalid", "null", "boolean", "number", "string", "array", "object"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "invalid"
}

// SyntaxError is input that is not JSON. Offset is the index of the
// offending byte (the length of the input when it ended too soon), so a
// caller can name its line and column.
type SyntaxError struct {
	Offset int64
	msg    string
}

func (e *SyntaxError) Error() string { return e.msg }

// TypeError is a valid value of another kind than the caller asked for (or
// a number out of the asked type's range). The scanner has read past it.
type TypeError struct {
	Offset int64 // where the value starts
	Want   string
	Got    string // the value's kind, or the number's text
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("json: cannot decode %s into %s (at byte %d)", e.Got, e.Want, e.Offset)
}

// maxDepth bounds nesting, as encoding/json does.
const maxDepth = 10000

// Scanner reads one JSON text from a byte slice.
type Scanner struct {
	data  []byte
	pos   int
	depth int
	buf   []byte // scratch for unescaping
	// keyStart and keyEnd delimit the text of the key last read.
	keyStart, keyEnd int
}

// New returns a scanner at the start of data.
func New(data []byte) *Scanner { return &Scanner{data: data} }

func (s *Scanner) syntax(at int, format string, args ...any) *SyntaxError {
	return &SyntaxError{Offset: int64(at), msg: "invalid JSON: " + fmt.Sprintf(format, args...)}
}

func (s *Scanner) unexpected(what string) *SyntaxError {
	if s.pos >= len(s.data) {
		return &SyntaxError{Offset: int64(len(s.data)), msg: "invalid JSON: unexpected end of input " + what}
	}
	return s.syntax(s.pos, "invalid character %s %s", quoteChar(s.data[s.pos]), what)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c < 0x20 || c >= 0x7f:
		return strconv.Quote(string(rune(c)))
	}
	return "'" + string(c) + "'"
}

func (s *Scanner) skipSpace() {
	d, i := s.data, s.pos
	for i < len(d) && isSpace[d[i]] {
		i++
		if d[i-1] == '\n' {
			// Indentation: eight bytes at a time up to the first one
			// that is not a space.
			for i+8 <= len(d) {
				y := binary.LittleEndian.Uint64(d[i:]) ^ (lsb * ' ')
				if y == 0 {
					i += 8
					continue
				}
				// The high bit of each byte of y that is not zero.
				m := ((y&low7 + low7) | y) & msb
				i += bits.TrailingZeros64(m) >> 3
				break
			}
		}
	}
	s.pos = i
}

var isSpace = [256]bool{' ': true, '\n': true, '\t': true, '\r': true}

// Pos returns the offset of the next value (whitespace skipped): where a
// value read next starts, for [Scanner.Since].
func (s *Scanner) Pos() int {
	s.skipSpace()
	return s.pos
}

// rawKey returns the text of the key last read by Object, quotes and
// escapes as written; valid in Object's callback until its value is read.
func (s *Scanner) rawKey() []byte { return s.data[s.keyStart:s.keyEnd] }

// Mark is a position to come back to with [Scanner.Rewind].
type Mark struct{ pos, depth int }

// Mark returns the position of the next value (whitespace skipped).
func (s *Scanner) Mark() Mark {
	s.skipSpace()
	return Mark{s.pos, s.depth}
}

// Rewind goes back to m, so that a value a decoder gave up on (a type
// error) can be read again, raw.
func (s *Scanner) Rewind(m Mark) { s.pos, s.depth = m.pos, m.depth }

// Since returns the input from start (a [Scanner.Pos]) to where the
// scanner is: the raw text of the value read since.
func (s *Scanner) Since(start int) []byte { return s.data[start:s.pos:s.pos] }

// Peek returns the kind of the next value without reading it.
func (s *Scanner) Peek() Kind {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return Invalid
	}
	return kindOf[s.data[s.pos]]
}

// kindOf is the kind of value each first byte starts.
var kindOf = func() (t [256]Kind) {
	t['{'], t['['], t['"'], t['t'], t['f'], t['n'], t['-'] = Object, Array, String, Bool, Bool, Null, Number
	for c := '0'; c <= '9'; c++ {
		t[c] = Number
	}
	return t
}()

// End checks that only whitespace is left.
func (s *Scanner) End() error {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.unexpected("after top-level value")
	}
	return nil
}

// Null reads a null if one comes next and reports whether it did.
func (s *Scanner) Null() (bool, error) {
	if s.Peek() != Null {
		return false, nil
	}
	return true, s.literal("null")
}

func (s *Scanner) literal(word string) error {
	if len(s.data)-s.pos >= len(word) && string(s.data[s.pos:s.pos+len(word)]) == word {
		s.pos += len(word)
		return nil
	}
	for i := 0; i < len(word); i++ {
		if s.pos+i >= len(s.data) || s.data[s.pos+i] != word[i] {
			s.pos += i
			return s.unexpected("in literal " + word)
		}
	}
	return nil
}

// mismatch reads past the next value and returns a TypeError for it.
func (s *Scanner) mismatch(want string) error {
	start := s.Pos()
	k := s.Peek()
	if err := s.Skip(); err != nil {
		return err
	}
	got := k.String()
	if k == Number {
		got = "number " + string(s.data[start:s.pos])
	}
	return &TypeError{Offset: int64(start), Want: want, Got: got}
}

// Skip reads past the next value, checking its syntax.
func (s *Scanner) Skip() error {
	switch s.Peek() {
	case Object:
		return s.Object(func(_ []byte) error { return s.Skip() })
	case Array:
		return s.Array(s.Skip)
	case String:
		return s.skipString()
	case Number:
		_, err := s.number()
		return err
	case Bool:
		if s.data[s.pos] == 't' {
			return s.literal("true")
		}
		return s.literal("false")
	case Null:
		return s.literal("null")
	}
	return s.unexpected("looking for beginning of value")
}

// Raw reads past the next value and returns its text, as it is in the
// input (a sub-slice; the caller must not modify it).
func (s *Scanner) Raw() ([]byte, error) {
	start := s.Pos()
	if err := s.Skip(); err != nil {
		return nil, err
	}
	return s.Since(start), nil
}

// Object reads an object, calling fn with each key (unescaped; valid until
// fn returns) with the scanner at the key's value, which fn must read
// (or skip). An error from fn ends the object and is returned.
func (s *Scanner) Object(fn func(key []byte) error) error {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return s.unexpected("looking for beginning of object")
	}
	if s.depth++; s.depth > maxDepth {
		return s.syntax(s.pos, "exceeded max depth")
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.unexpected("looking for beginning of object key string")
		}
		keyStart := s.pos
		key, err := s.stringBytes()
		if err != nil {
			return err
		}
		s.keyStart, s.keyEnd = keyStart, s.pos
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.unexpected("after object key")
		}
		s.pos++
		if err := fn(key); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected("after object key:value pair")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.unexpected("after object key:value pair")
		}
	}
}

// ObjectOrType is Object for a caller that wants an object: another kind
// of value is read past and returned as a TypeError.
func (s *Scanner) ObjectOrType(want string, fn func(key []byte) error) error {
	if s.Peek() != Object {
		return s.mismatch(want)
	}
	return s.Object(fn)
}

// Array reads an array, calling fn with the scanner at each element,
// which fn must read (or skip).
func (s *Scanner) Array(fn func() error) error {
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '[' {
		return s.unexpected("looking for beginning of array")
	}
	if s.depth++; s.depth > maxDepth {
		return s.syntax(s.pos, "exceeded max depth")
	}
	s.pos++
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.unexpected("after array element")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.unexpected("after array element")
		}
	}
}

// ArrayOrType is Array for a caller that wants an array.
func (s *Scanner) ArrayOrType(want string, fn func() error) error {
	if s.Peek() != Array {
		return s.mismatch(want)
	}
	return s.Array(fn)
}

// String reads a string value.
func (s *Scanner) String() (string, error) {
	if s.Peek() != String {
		return "", s.mismatch("string")
	}
	b, err := s.stringBytes()
	return string(b), err
}

// NullableString reads a string, or null as "".
func (s *Scanner) NullableString() (string, error) {
	switch s.Peek() {
	case String:
		b, err := s.stringBytes()
		return string(b), err
	case Null:
		return "", s.literal("null")
	}
	return "", s.mismatch("string")
}

// NullableInt64 reads an integer, or null as 0.
func (s *Scanner) NullableInt64() (int64, error) {
	switch s.Peek() {
	case Number:
		if n, ok := s.quickInt(); ok {
			return n, nil
		}
		start := s.pos
		lit, err := s.number()
		if err != nil {
			return 0, err
		}
		if n, ok := parseInt(lit); ok {
			return n, nil
		}
		return 0, &TypeError{Offset: int64(start), Want: "integer", Got: "number " + string(lit)}
	case Null:
		return 0, s.literal("null")
	}
	return 0, s.mismatch("integer")
}

// NullableFloat64 reads a number, or null as 0.
func (s *Scanner) NullableFloat64() (float64, error) {
	if s.Peek() == Null {
		return 0, s.literal("null")
	}
	return s.Float64()
}

// Bool reads a boolean value.
func (s *Scanner) Bool() (bool, error) {
	if s.Peek() != Bool {
		return false, s.mismatch("boolean")
	}
	if s.data[s.pos] == 't' {
		return true, s.literal("true")
	}
	return false, s.literal("false")
}

// Int64 reads an integer.
func (s *Scanner) Int64() (int64, error) {
	if s.Peek() != Number {
		return 0, s.mismatch("integer")
	}
	start := s.pos
	lit, err := s.number()
	if err != nil {
		return 0, err
	}
	if n, ok := parseInt(lit); ok {
		return n, nil
	}
	return 0, &TypeError{Offset: int64(start), Want: "integer", Got: "number " + string(lit)}
}

// Float64 reads a number.
func (s *Scanner) Float64() (float64, error) {
	if s.Peek() != Number {
		return 0, s.mismatch("number")
	}
	start := s.pos
	lit, err := s.number()
	if err != nil {
		return 0, err
	}
	if n, ok := parseSmallInt(lit); ok {
		return float64(n), nil
	}
	f, perr := strconv.ParseFloat(string(lit), 64)
	if perr != nil {
		return 0, &TypeError{Offset: int64(start), Want: "number", Got: "number " + string(lit)}
	}
	return f, nil
}

// quickInt reads a plain integer of up to 18 digits (no fraction, no
// exponent, no leading zero) in one loop, the common case; otherwise it
// reads nothing and reports false.
func (s *Scanner) quickInt() (int64, bool) {
	d, i := s.data, s.pos
	neg := d[i] == '-'
	if neg {
		i++
	}
	start := i
	var n int64
	for i < len(d) && d[i] >= '0' && d[i] <= '9' {
		n = n*10 + int64(d[i]-'0')
		i++
	}
	digits := i - start
	if digits == 0 || digits > 18 || (digits > 1 && d[start] == '0') {
		return 0, false
	}
	if i < len(d) && (d[i] == '.' || d[i] == 'e' || d[i] == 'E') {
		return 0, false
	}
	s.pos = i
	if neg {
		n = -n
	}
	return n, true
}

// parseInt is strconv.ParseInt(lit, 10, 64) for a number literal.
func parseInt(lit []byte) (int64, bool) {
	if n, ok := parseSmallInt(lit); ok {
		return n, true
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	return n, err == nil
}

// parseSmallInt parses an integer literal of up to 18 digits without
// allocating.
func parseSmallInt(lit []byte) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	digits := lit
	if neg {
		digits = lit[1:]
	}
	if len(digits) == 0 || len(digits) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// number reads a number literal and returns its text.
func (s *Scanner) number() ([]byte, error) {
	start := s.pos
	d := s.data
	i := s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return nil, s.unexpected("in numeric literal")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("after decimal point in numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			s.pos = i
			return nil, s.unexpected("in exponent of numeric literal")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	s.pos = i
	return d[start:i], nil
}

// skipString reads past a string, checking it.
func (s *Scanner) skipString() error {
	d := s.data
	i := s.pos + 1
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return nil
		case c == '\\':
			s.pos = i
			if _, err := s.stringBytes(); err != nil {
				return err
			}
			return nil
		case c < 0x20:
			s.pos = i
			return s.unexpected("in string literal")
		}
		i++
	}
	s.pos = len(d)
	return s.unexpected("in string literal")
}

// stringBytes reads a string (the scanner at its opening quote, or inside
// it after plain bytes) and returns its unescaped bytes: a sub-slice of
// the input when it has no escapes and is valid UTF-8, else the scratch
// buffer (valid until the next call).
func (s *Scanner) stringBytes() ([]byte, error) {
	d := s.data
	start := s.pos
	if d[start] == '"' {
		start++
	}
	i := start
	// Eight bytes at a time while none is a quote, a backslash, a control
	// character or non-ASCII; the byte loop below finds which one it was.
	for i+8 <= len(d) {
		x := binary.LittleEndian.Uint64(d[i:])
		if m := (x | hasLess(x, 0x20) | hasZero(x^(lsb*'"')) | hasZero(x^(lsb*'\\'))) & msb; m != 0 {
			// The lowest flagged byte is exact (borrows only run upward).
			i += bits.TrailingZeros64(m) >> 3
			break
		}
		i += 8
	}
	for i < len(d) {
		c := d[i]
		if c == '"' {
			s.pos = i + 1
			return d[start:i:i], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		i++
	}
	buf := append(s.buf[:0], d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.buf = buf
			return buf, nil
		case c < 0x20:
			s.pos = i
			return nil, s.unexpected("in string literal")
		case c == '\\':
			if i+1 >= len(d) {
				s.pos = len(d)
				return nil, s.unexpected("in string escape code")
			}
			e := d[i+1]
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
				i += 2
			case 'b':
				buf = append(buf, '\b')
				i += 2
			case 'f':
				buf = append(buf, '\f')
				i += 2
			case 'n':
				buf = append(buf, '\n')
				i += 2
			case 'r':
				buf = append(buf, '\r')
				i += 2
			case 't':
				buf = append(buf, '\t')
				i += 2
			case 'u':
				r, ok := hex4(d, i+2)
				if !ok {
					s.pos = i + 2
					for s.pos < len(d) && s.pos < i+6 && isHex(d[s.pos]) {
						s.pos++
					}
					return nil, s.unexpected("in \\u hexadecimal character escape")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if i+1 < len(d) && d[i] == '\\' && d[i+1] == 'u' {
						if r2, ok := hex4(d, i+2); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								buf = utf8.AppendRune(buf, dec)
								i += 6
								continue
							}
						}
					}
					r = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, r)
			default:
				s.pos = i + 1
				return nil, s.unexpected("in string escape code")
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d[i:i+size]...)
			}
			i += size
		}
	}
	s.pos = len(d)
	s.buf = buf
	return nil, s.unexpected("in string literal")
}

const (
	lsb  = 0x0101010101010101
	msb  = 0x8080808080808080
	low7 = 0x7f7f7f7f7f7f7f7f
)

// hasZero has the high bit set in (at least) the lowest zero byte of x.
func hasZero(x uint64) uint64 { return (x - lsb) &^ x & msb }

// hasLess has a high bit set when some byte of x (all below 0x80) is
// below n.
func hasLess(x uint64, n uint64) uint64 { return (x - lsb*n) &^ x & msb }

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hex4(d []byte, i int) (rune, bool) {
	if i+4 > len(d) {
		return 0, false
	}
	var r rune
	for _, c := range d[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
