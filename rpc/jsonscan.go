package rpc

// jsonScanner checks JSON syntax one chunk at a time and says where the
// first value ends. The readers use it to find message boundaries that do
// not depend on a header being right: a valid JSON text can never contain
// a raw CR or LF inside a string nor a bare word such as Content-Length
// outside one, so the byte where the syntax breaks is where a malformed
// frame ends and the search for the next frame begins.
//
// It validates structure, strings (escapes, no control characters),
// numbers and literals; it does not check UTF-8 (the decoders replace bad
// sequences) and it does not limit depth (checkMessage does, with a
// reason).
type jsonScanner struct {
	state  scanState
	stack  []byte // open containers: '{' or '['
	lit    string // rest of the literal being matched
	hex    int    // hex digits left in a \u escape
	strKey bool   // the string being read is an object key
}

type scanState uint8

const (
	stValue      scanState = iota // a value must come next
	stArrFirst                    // after '[': a value or ']'
	stObjFirst                    // after '{': a key or '}'
	stObjKey                      // after ',' in an object: a key
	stColon                       // after a key: ':'
	stAfterValue                  // after a value in a container: ',' or the close
	stString
	stEscape
	stUnicode
	stNumMinus // after '-': a digit
	stNumZero  // after a leading 0
	stNumInt   // in the integer digits
	stNumDot   // after '.': a digit
	stNumFrac  // in the fraction digits
	stNumE     // after 'e': a sign or a digit
	stNumSign  // after the exponent sign: a digit
	stNumExp   // in the exponent digits
	stLiteral
	stDone  // the top-level value is complete
	stError // the syntax broke
)

// scanResult says how a call to scan ended.
type scanResult uint8

const (
	scanMore  scanResult = iota // every byte was consumed; the value is not complete yet
	scanDone                    // the value ended; n bytes belong to it
	scanError                   // the byte at n breaks the syntax
)

func (s *jsonScanner) reset() {
	s.state, s.stack, s.lit, s.hex, s.strKey = stValue, s.stack[:0], "", 0, false
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// scan feeds b to the scanner. With scanDone, b[:n] completes the value;
// with scanError, b[n] is the first byte that cannot follow what came
// before; with scanMore, n == len(b).
func (s *jsonScanner) scan(b []byte) (n int, res scanResult) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.state {
		case stString:
			// Fast path: run to the next byte that matters.
			j := i
			for j < len(b) && b[j] != '"' && b[j] != '\\' && b[j] >= 0x20 {
				j++
			}
			if j == len(b) {
				return len(b), scanMore
			}
			i, c = j, b[j]
			switch {
			case c == '"':
				if s.strKey {
					s.state = stColon
				} else if s.valueDone() {
					return i + 1, scanDone
				}
			case c == '\\':
				s.state = stEscape
			default:
				return i, s.fail()
			}
		case stEscape:
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.state = stString
			case 'u':
				s.state, s.hex = stUnicode, 4
			default:
				return i, s.fail()
			}
		case stUnicode:
			if !isHex(c) {
				return i, s.fail()
			}
			if s.hex--; s.hex == 0 {
				s.state = stString
			}
		case stLiteral:
			if c != s.lit[0] {
				return i, s.fail()
			}
			if s.lit = s.lit[1:]; s.lit == "" && s.valueDone() {
				return i + 1, scanDone
			}
		case stNumMinus:
			switch {
			case c == '0':
				s.state = stNumZero
			case c >= '1' && c <= '9':
				s.state = stNumInt
			default:
				return i, s.fail()
			}
		case stNumDot, stNumSign:
			if !isDigit(c) {
				return i, s.fail()
			}
			if s.state == stNumDot {
				s.state = stNumFrac
			} else {
				s.state = stNumExp
			}
		case stNumE:
			switch {
			case c == '+' || c == '-':
				s.state = stNumSign
			case isDigit(c):
				s.state = stNumExp
			default:
				return i, s.fail()
			}
		case stNumZero, stNumInt, stNumFrac, stNumExp:
			switch {
			case isDigit(c) && s.state != stNumZero:
			case c == '.' && (s.state == stNumZero || s.state == stNumInt):
				s.state = stNumDot
			case (c == 'e' || c == 'E') && s.state != stNumExp:
				s.state = stNumE
			default:
				// The number ended before c; c is read again.
				if s.valueDone() {
					return i, scanDone
				}
				i--
			}
		case stValue, stArrFirst:
			if isJSONSpace(c) {
				continue
			}
			if c == ']' && s.state == stArrFirst {
				if s.closeContainer() {
					return i + 1, scanDone
				}
				continue
			}
			if !s.startValue(c) {
				return i, s.fail()
			}
		case stObjFirst, stObjKey:
			switch {
			case isJSONSpace(c):
			case c == '"':
				s.state, s.strKey = stString, true
			case c == '}' && s.state == stObjFirst:
				if s.closeContainer() {
					return i + 1, scanDone
				}
			default:
				return i, s.fail()
			}
		case stColon:
			switch {
			case isJSONSpace(c):
			case c == ':':
				s.state, s.strKey = stValue, false
			default:
				return i, s.fail()
			}
		case stAfterValue:
			top := s.stack[len(s.stack)-1]
			switch {
			case isJSONSpace(c):
			case c == ',' && top == '{':
				s.state = stObjKey
			case c == ',':
				s.state = stValue
			case c == '}' && top == '{', c == ']' && top == '[':
				if s.closeContainer() {
					return i + 1, scanDone
				}
			default:
				return i, s.fail()
			}
		case stDone:
			return i, scanDone
		case stError:
			return i, scanError
		}
	}
	return len(b), scanMore
}

// end says whether the input may end here: only after a complete value (a
// top-level number is complete only once the input ends).
func (s *jsonScanner) end() bool {
	switch s.state {
	case stDone:
		return true
	case stNumZero, stNumInt, stNumFrac, stNumExp:
		return len(s.stack) == 0
	}
	return false
}

func (s *jsonScanner) startValue(c byte) bool {
	switch {
	case c == '{':
		s.stack = append(s.stack, '{')
		s.state = stObjFirst
	case c == '[':
		s.stack = append(s.stack, '[')
		s.state = stArrFirst
	case c == '"':
		s.state, s.strKey = stString, false
	case c == '-':
		s.state = stNumMinus
	case c == '0':
		s.state = stNumZero
	case c >= '1' && c <= '9':
		s.state = stNumInt
	case c == 't':
		s.state, s.lit = stLiteral, "rue"
	case c == 'f':
		s.state, s.lit = stLiteral, "alse"
	case c == 'n':
		s.state, s.lit = stLiteral, "ull"
	default:
		return false
	}
	return true
}

// valueDone records that a scalar value ended and reports whether it was
// the top-level value.
func (s *jsonScanner) valueDone() bool {
	if len(s.stack) == 0 {
		s.state = stDone
		return true
	}
	s.state = stAfterValue
	return false
}

// closeContainer pops the innermost container and reports whether that
// completed the top-level value.
func (s *jsonScanner) closeContainer() bool {
	s.stack = s.stack[:len(s.stack)-1]
	return s.valueDone()
}

func (s *jsonScanner) fail() scanResult {
	s.state = stError
	return scanError
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
