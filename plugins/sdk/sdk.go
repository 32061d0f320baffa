package sdk

import (
	"errors"
	"strconv"
	"unicode/utf8"
)

// The classes a verdict may carry.
const (
	ClassAuthExpired  = "auth_expired"
	ClassOrgPolicy    = "org_policy"
	ClassInvalidGrant = "invalid_grant"
	ClassRateLimited  = "rate_limited"
	ClassTransient    = "transient"
	ClassClientError  = "client_error"
)

// Input is one failed upstream call as the host describes it.
type Input struct {
	// Source is the endpoint that failed: "token", "usage" or "messages".
	Source string
	// Status is the HTTP status, 0 when no response arrived.
	Status int
	// Network is true when the call failed below HTTP.
	Network bool
	// StreamRateLimit is true when a streamed 200 opened with a
	// rate_limit_error event.
	StreamRateLimit bool
	// Headers holds allow-listed response headers, lower-cased names.
	Headers map[string]string
	// Body is the response body, cut to 16 KiB; BodyTruncated says so.
	Body          string
	BodyTruncated bool
	// Message is the host's redacted description of the failure.
	Message string
	// Builtin is the host's own verdict.
	Builtin Verdict
}

// Verdict is a classification: the class, how long to wait before
// retrying, and a short reason.
type Verdict struct {
	// Class is one of the Class constants.
	Class string
	// RetryAfterMs is the wait in milliseconds; a negative value keeps
	// the built-in one.
	RetryAfterMs int64
	// Reason is a short explanation (the host keeps 256 bytes).
	Reason string
}

// Func is the function a plugin author writes. It returns false for "no
// opinion", and the built-in verdict stands.
type Func func(in Input) (Verdict, bool)

var handler Func

// Handle registers fn as the plugin's classifier. Call it from init.
func Handle(fn Func) { handler = fn }

// Run decodes the input JSON, calls the registered handler and appends its
// verdict's JSON to dst. It returns dst unchanged for no opinion, and for
// input it cannot read (the host then uses its built-in verdict).
func Run(dst, input []byte) []byte {
	if handler == nil {
		return dst
	}
	in, err := ParseInput(input)
	if err != nil {
		return dst
	}
	v, ok := handler(in)
	if !ok {
		return dst
	}
	return AppendVerdict(dst, v)
}

// AppendVerdict appends v as output JSON to dst.
func AppendVerdict(dst []byte, v Verdict) []byte {
	dst = append(dst, `{"class":`...)
	dst = appendString(dst, v.Class)
	if v.RetryAfterMs >= 0 {
		dst = append(dst, `,"retryAfterMs":`...)
		dst = strconv.AppendInt(dst, v.RetryAfterMs, 10)
	}
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, v.Reason)
	return append(dst, '}')
}

func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

var errSyntax = errors.New("sdk: malformed input JSON")

// ParseInput decodes the host's input JSON without reflection. Unknown
// keys are skipped, so newer hosts stay readable.
func ParseInput(b []byte) (Input, error) {
	p := parser{b: b}
	var in Input
	err := p.object(func(key []byte) error {
		switch string(key) {
		case "source":
			return p.str(&in.Source)
		case "status":
			n, err := p.int()
			in.Status = int(n)
			return err
		case "network":
			return p.bool(&in.Network)
		case "streamRateLimit":
			return p.bool(&in.StreamRateLimit)
		case "headers":
			return p.object(func(name []byte) error {
				var v string
				if err := p.str(&v); err != nil {
					return err
				}
				if in.Headers == nil {
					in.Headers = make(map[string]string, 4)
				}
				in.Headers[string(name)] = v
				return nil
			})
		case "body":
			return p.str(&in.Body)
		case "bodyTruncated":
			return p.bool(&in.BodyTruncated)
		case "message":
			return p.str(&in.Message)
		case "builtin":
			return p.object(func(k []byte) error {
				switch string(k) {
				case "class":
					return p.str(&in.Builtin.Class)
				case "retryAfterMs":
					n, err := p.int()
					in.Builtin.RetryAfterMs = n
					return err
				case "reason":
					return p.str(&in.Builtin.Reason)
				}
				return p.skip()
			})
		}
		return p.skip()
	})
	if err != nil {
		return Input{}, err
	}
	p.ws()
	if p.i != len(p.b) {
		return Input{}, errSyntax
	}
	return in, nil
}

// parser is a small JSON reader over one input.
type parser struct {
	b       []byte
	i       int
	scratch []byte
}

func (p *parser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\n' || p.b[p.i] == '\t' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *parser) expect(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads {"key": value, ...}, calling field with each key (valid
// only during the call) to read the value.
func (p *parser) object(field func(key []byte) error) error {
	if !p.expect('{') {
		return errSyntax
	}
	if p.expect('}') {
		return nil
	}
	for {
		p.ws()
		key, err := p.raw()
		if err != nil {
			return err
		}
		if !p.expect(':') {
			return errSyntax
		}
		if err := field(key); err != nil {
			return err
		}
		if p.expect(',') {
			continue
		}
		if p.expect('}') {
			return nil
		}
		return errSyntax
	}
}

func (p *parser) str(dst *string) error {
	p.ws()
	b, err := p.raw()
	if err != nil {
		return err
	}
	*dst = string(b)
	return nil
}

// raw reads a JSON string and returns its unescaped bytes, which alias the
// input or the parser's scratch buffer until the next call.
func (p *parser) raw() ([]byte, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, errSyntax
	}
	p.i++
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return nil, errSyntax
		}
		p.i++
	}
	return nil, errSyntax
}

// escaped finishes a string that contains escapes, from start.
func (p *parser) escaped(start int) ([]byte, error) {
	out := append(p.scratch[:0], p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			p.scratch = out
			return out, nil
		case c < 0x20:
			return nil, errSyntax
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, errSyntax
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, errSyntax
			}
			if r >= 0xd800 && r < 0xdc00 && p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
				p.i += 2
				lo, ok := p.hex4()
				if !ok {
					return nil, errSyntax
				}
				if lo >= 0xdc00 && lo < 0xe000 {
					r = (r-0xd800)<<10 + (lo - 0xdc00) + 0x10000
				} else {
					out = utf8.AppendRune(out, utf8.RuneError)
					r = lo
				}
			}
			if r >= 0xd800 && r < 0xe000 {
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, errSyntax
		}
	}
	return nil, errSyntax
}

func (p *parser) hex4() (rune, bool) {
	if p.i+4 > len(p.b) {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	p.i += 4
	return r, true
}

func (p *parser) int() (int64, error) {
	p.ws()
	start := p.i
	for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
		p.i++
	}
	n, err := strconv.ParseInt(string(p.b[start:p.i]), 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(string(p.b[start:p.i]), 64)
		if ferr != nil {
			return 0, errSyntax
		}
		return int64(f), nil
	}
	return n, nil
}

func (p *parser) bool(dst *bool) error {
	p.ws()
	switch {
	case hasPrefix(p.b[p.i:], "true"):
		*dst, p.i = true, p.i+4
	case hasPrefix(p.b[p.i:], "false"):
		*dst, p.i = false, p.i+5
	default:
		return errSyntax
	}
	return nil
}

func hasPrefix(b []byte, s string) bool { return len(b) >= len(s) && string(b[:len(s)]) == s }

// skip reads and discards one value of any type.
func (p *parser) skip() error {
	p.ws()
	if p.i >= len(p.b) {
		return errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.raw()
		return err
	case c == '{':
		return p.object(func([]byte) error { return p.skip() })
	case c == '[':
		p.i++
		if p.expect(']') {
			return nil
		}
		for {
			if err := p.skip(); err != nil {
				return err
			}
			if p.expect(',') {
				continue
			}
			if p.expect(']') {
				return nil
			}
			return errSyntax
		}
	case c == 't' || c == 'f':
		var b bool
		return p.bool(&b)
	case c == 'n':
		if !hasPrefix(p.b[p.i:], "null") {
			return errSyntax
		}
		p.i += 4
		return nil
	default:
		_, err := p.int()
		return err
	}
}
