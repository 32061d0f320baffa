package sdk

import (
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"
	"unsafe"
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
//
// # Notes
//
// To keep a call free of garbage, the strings and the Headers map of the
// result alias b and a buffer reused by the next call: they are valid
// until Classify returns. Copy (strings.Clone, maps.Clone) what you keep.
func ParseInput(b []byte) (Input, error) {
	p := parser{b: b}
	scratch = scratch[:0]
	if cap(scratch) > 64<<10 {
		scratch = nil
	}
	in := Input{Headers: headers}
	clear(headers)
	if err := p.input(&in); err != nil {
		return Input{}, err
	}
	p.ws()
	if p.i != len(p.b) {
		return Input{}, errSyntax
	}
	return in, nil
}

// headers is reused by every call: see ParseInput.
var headers = make(map[string]string, 8)

func (p *parser) input(in *Input) error {
	if !p.expect('{') {
		return errSyntax
	}
	for more := !p.expect('}'); more; {
		key, err := p.key()
		if err != nil {
			return err
		}
		switch key {
		case "source":
			in.Source, err = p.str()
		case "status":
			var n int64
			n, err = p.int()
			in.Status = int(n)
		case "network":
			in.Network, err = p.bool()
		case "streamRateLimit":
			in.StreamRateLimit, err = p.bool()
		case "headers":
			err = p.headers(in.Headers)
		case "body":
			in.Body, err = p.str()
		case "bodyTruncated":
			in.BodyTruncated, err = p.bool()
		case "message":
			in.Message, err = p.str()
		case "builtin":
			err = p.verdict(&in.Builtin)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
		if more, err = p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) headers(h map[string]string) error {
	if !p.expect('{') {
		return errSyntax
	}
	for more := !p.expect('}'); more; {
		name, err := p.key()
		if err != nil {
			return err
		}
		v, err := p.str()
		if err != nil {
			return err
		}
		h[name] = v
		if more, err = p.next(); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) verdict(v *Verdict) error {
	if !p.expect('{') {
		return errSyntax
	}
	for more := !p.expect('}'); more; {
		key, err := p.key()
		if err != nil {
			return err
		}
		switch key {
		case "class":
			v.Class, err = p.str()
		case "retryAfterMs":
			v.RetryAfterMs, err = p.int()
		case "reason":
			v.Reason, err = p.str()
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
		if more, err = p.next(); err != nil {
			return err
		}
	}
	return nil
}

// key reads an object key and its colon.
func (p *parser) key() (string, error) {
	k, err := p.str()
	if err != nil {
		return "", err
	}
	if !p.expect(':') {
		return "", errSyntax
	}
	return k, nil
}

// next reads the comma or closing brace after a member: true for more.
func (p *parser) next() (bool, error) {
	p.ws()
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case ',':
			p.i++
			return true, nil
		case '}':
			p.i++
			return false, nil
		}
	}
	return false, errSyntax
}

// parser is a small JSON reader over one input.
type parser struct {
	b []byte
	i int
}

// scratch holds unescaped strings; ParseInput empties it on each call.
var scratch []byte

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

func (p *parser) str() (string, error) {
	p.ws()
	b, err := p.raw()
	if err != nil {
		return "", err
	}
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// raw reads a JSON string and returns its unescaped bytes, which alias the
// input or the parser's scratch buffer until the next call.
func (p *parser) raw() ([]byte, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return nil, errSyntax
	}
	p.i++
	start := p.i
	// bytes.IndexByte is one tight loop (assembly on most targets), far
	// cheaper in wasm than a Go loop over every byte.
	q := bytes.IndexByte(p.b[start:], '"')
	if q < 0 {
		return nil, errSyntax
	}
	if e := bytes.IndexByte(p.b[start:start+q], '\\'); e >= 0 {
		p.i = start + e
		return p.escaped(start)
	}
	p.i = start + q + 1
	return p.b[start : start+q], nil
}

// escaped finishes a string that contains escapes, from start.
func (p *parser) escaped(start int) ([]byte, error) {
	// Unescaped strings are appended to the shared scratch buffer; a string
	// already handed out keeps its own backing array when it grows.
	from := len(scratch)
	out := append(scratch, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			scratch = out
			return out[from:], nil
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
	num := unsafe.String(unsafe.SliceData(p.b[start:p.i]), p.i-start)
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(num, 64)
		if ferr != nil {
			return 0, errSyntax
		}
		return int64(f), nil
	}
	return n, nil
}

func (p *parser) bool() (bool, error) {
	p.ws()
	switch {
	case hasPrefix(p.b[p.i:], "true"):
		p.i += 4
		return true, nil
	case hasPrefix(p.b[p.i:], "false"):
		p.i += 5
		return false, nil
	}
	return false, errSyntax
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
		p.i++
		if p.expect('}') {
			return nil
		}
		for {
			p.ws()
			if _, err := p.key(); err != nil {
				return err
			}
			if err := p.skip(); err != nil {
				return err
			}
			more, err := p.next()
			if err != nil || !more {
				return err
			}
		}
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
		_, err := p.bool()
		return err
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
