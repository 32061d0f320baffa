package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/sourcegraph/jsonrpc2"
)

// Framing says how messages are delimited on the byte stream.
type Framing string

// The framings the server speaks.
const (
	// FramingLSP is the LSP base protocol: "Content-Length: N" headers, a
	// blank line, then N bytes of JSON. It is what vscode-jsonrpc speaks,
	// and the default.
	FramingLSP Framing = "lsp"
	// FramingNDJSON is one JSON message per line, as MCP stdio hosts speak.
	FramingNDJSON Framing = "ndjson"
)

// ParseFraming returns the framing named s ("lsp" or "ndjson").
func ParseFraming(s string) (Framing, error) {
	switch f := Framing(strings.ToLower(s)); f {
	case FramingLSP, FramingNDJSON:
		return f, nil
	}
	return "", fmt.Errorf("unknown framing %q (want lsp or ndjson)", s)
}

// DefaultMaxFrameBytes is the largest message accepted when
// Options.MaxFrameBytes is zero: 8 MiB, far above any legitimate request
// (a route/report carries a truncated body excerpt), and small enough that
// a runaway host cannot make the server buffer without bound.
const DefaultMaxFrameBytes = 8 << 20

const (
	maxHeaderLine = 4 << 10 // one LSP header line
	idPeekBytes   = 1 << 10 // prefix of an oversized frame searched for its id
	keepBufBytes  = 64 << 10
)

// frameError is a recoverable framing fault: the stream answers it with an
// error response and reads on. ID is the request id when it could be found.
type frameError struct {
	code int64
	msg  string
	id   json.RawMessage
}

func (e *frameError) Error() string { return e.msg }

// frameReader reads one message body at a time. It returns a *frameError for
// faults it has recovered from (the next call reads the next message) and
// any other error when the stream cannot go on (io.EOF at a clean end).
type frameReader interface {
	readFrame() ([]byte, error)
	// pending reports whether input, or an answer to a bad frame, is
	// already buffered, so the next readFrame may not have to wait.
	pending() bool
}

// frameWriter appends one framed message to dst.
type frameWriter func(dst, body []byte) []byte

func newFrameReader(f Framing, r io.Reader, max int) frameReader {
	if f == FramingNDJSON {
		return &lineReader{src: source{r: r}, max: max}
	}
	return &headerReader{src: source{r: r}, max: max}
}

func frameWriterFor(f Framing) frameWriter {
	if f == FramingNDJSON {
		return func(dst, body []byte) []byte { return append(append(dst, body...), '\n') }
	}
	return func(dst, body []byte) []byte {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n\r\n"...)
		return append(dst, body...)
	}
}

// source is the readers' buffer over the input. Offsets given to and
// returned by its users count from the first byte not yet consumed, so they
// stay valid while more input is read.
type source struct {
	r   io.Reader
	buf []byte
	pos int // first byte not consumed
	end int // end of the buffered input
	err error
}

func (s *source) data() []byte { return s.buf[s.pos:s.end] }

func (s *source) buffered() int { return s.end - s.pos }

func (s *source) consume(n int) {
	s.pos += n
	if s.pos == s.end {
		s.pos, s.end = 0, 0
	}
}

// fill reads until at least n bytes are buffered. It returns the input's
// error (io.EOF at its end) when they never come.
func (s *source) fill(n int) error {
	for empty := 0; s.buffered() < n; {
		if s.err != nil {
			return s.err
		}
		s.makeRoom(n)
		m, err := s.r.Read(s.buf[s.end:])
		s.end += m
		if err != nil {
			s.err = err
		} else if m == 0 {
			if empty++; empty > 100 {
				s.err = io.ErrNoProgress
			}
		}
	}
	return nil
}

// more reads at least one more byte.
func (s *source) more() error { return s.fill(s.buffered() + 1) }

// makeRoom makes the buffer hold n bytes from pos and leaves room for a
// read. A buffer grown for one large message is given back afterwards.
func (s *source) makeRoom(n int) {
	const minRead = 4 << 10
	want := max(n, s.buffered()+minRead)
	if len(s.buf)-s.pos >= want {
		return
	}
	if want <= len(s.buf) && !(len(s.buf) > 1<<20 && want < len(s.buf)/4) {
		copy(s.buf, s.data())
		s.end -= s.pos
		s.pos = 0
		return
	}
	nb := make([]byte, max(2*want, 64<<10))
	s.end = copy(nb, s.data())
	s.pos = 0
	s.buf = nb
}

// skipSpace consumes whitespace and blank lines. It returns io.EOF when the
// input ends before anything else.
func (s *source) skipSpace() error {
	for {
		d := s.data()
		i := 0
		for i < len(d) && isJSONSpace(d[i]) {
			i++
		}
		s.consume(i)
		if i < len(d) {
			return nil
		}
		if err := s.more(); err != nil {
			return err
		}
	}
}

// scanValue runs the JSON scanner over the input from off. With exact, the
// message is the next limit bytes: one value and then only whitespace.
// Otherwise the message is the first value, at most limit bytes. It
// returns where scanning stopped (the end of the message, or the first
// byte that does not belong to it), whether the message is well formed,
// and the input's error if it ended first.
func scanValue(src *source, sc *jsonScanner, off, limit int, exact bool) (stop int, ok bool, err error) {
	sc.reset()
	i, end, done := off, off+limit, false
	for {
		d := src.data()
		hi := min(len(d), end)
		for i < hi {
			if done {
				for i < hi && isJSONSpace(d[i]) {
					i++
				}
				if i < hi {
					return i, false, nil // more than one value: the length was too long
				}
				break
			}
			n, res := sc.scan(d[i:hi])
			i += n
			switch res {
			case scanError:
				return i, false, nil
			case scanDone:
				if !exact {
					return i, true, nil
				}
				done = true
			}
		}
		if i == end {
			return i, done || sc.end(), nil
		}
		if err := src.fill(i + 1); err != nil {
			if !exact && sc.end() {
				return i, true, nil // a number at the very end of the input
			}
			return i, false, err
		}
	}
}

// headerReader reads LSP frames. Header names match case-insensitively, as
// HTTP header names do; unknown headers (Content-Type) are ignored.
//
// Every body is checked as it arrives: a body must be exactly one JSON
// value, so the byte where the syntax breaks, or where a second value
// starts, marks a Content-Length that lies. Such a frame is answered at
// once, with its id when its first bytes hold one, and the reader
// resynchronises: it searches from the start of the bad frame for the next
// "Content-Length:" header line (anywhere in a line, since a body without
// a trailing newline runs into the next header) or for a JSON object at
// the start of a line (a message sent without headers). Nothing found
// there is ever read as a body, so no later request is lost.
type headerReader struct {
	src    source
	max    int
	scan   jsonScanner
	resync bool
	from   int // the resync search starts here
	quiet  int // an object at a line start before this offset belongs to an answered frame
}

const maxHeaderBytes = 16 << 10 // one frame's header block

func (h *headerReader) pending() bool { return h.src.buffered() > 0 }

func (h *headerReader) readFrame() ([]byte, error) {
	if h.resync {
		if err := h.findFrameStart(); err != nil {
			return nil, err
		}
	}
	return h.frame()
}

func (h *headerReader) startResync(from, quiet int) {
	h.resync, h.from, h.quiet = true, from, quiet
}

func (h *headerReader) frame() ([]byte, error) {
	if err := h.src.skipSpace(); err != nil {
		return nil, err
	}
	if c := h.src.data()[0]; c == '{' || c == '[' {
		return nil, h.badBody(0, h.max, false, "a message without a Content-Length header")
	}
	length := int64(-1)
	lengthText, problem := "", ""
	off := 0
	for {
		if err := h.src.fill(off + 1); err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		if c := h.src.data()[off]; c == '{' || c == '[' {
			limit, exact := h.max, false
			if length >= 0 && length <= int64(h.max) {
				limit, exact = int(length), true
			}
			return nil, h.badBody(off, limit, exact, "the blank line after the headers is missing")
		}
		line, next, err := h.line(off)
		if errors.Is(err, errLineTooLong) || next > maxHeaderBytes {
			return nil, h.garbage(off, "a header line is too long")
		}
		if err != nil {
			return nil, io.ErrUnexpectedEOF
		}
		if len(line) == 0 {
			off = next
			break
		}
		name, value, ok := headerLine(line)
		if !ok {
			return nil, h.garbage(off, "expected a header line such as \"Content-Length: 42\"")
		}
		if strings.EqualFold(string(name), "content-length") {
			n, ok := parseLength(value)
			switch {
			case !ok:
				problem = fmt.Sprintf("bad Content-Length value %q (want decimal digits)", value[:min(len(value), 32)])
			case length >= 0 && n != length:
				problem = "conflicting Content-Length headers"
			default:
				length, lengthText = n, string(value)
			}
		}
		off = next
	}
	if problem == "" && length < 0 {
		problem = "missing Content-Length header"
	}
	if problem != "" {
		if d := h.src.data(); off < len(d) && (d[off] == '{' || d[off] == '[') {
			return nil, h.badBody(off, h.max, false, problem)
		}
		h.startResync(off, off)
		return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + problem}
	}
	if length > int64(h.max) {
		// Rejected at the header: the body is never read as one. Its id
		// is taken from whatever of it has arrived already.
		d := h.src.data()
		id := idFromPrefix(d[off:min(len(d), off+idPeekBytes)])
		h.startResync(off, off+1)
		return nil, tooLarge(lengthText, h.max, id)
	}
	n := int(length)
	stop, ok, err := scanValue(&h.src, &h.scan, off, n, true)
	if ok {
		body := h.src.data()[off : off+n]
		h.src.consume(off + n)
		return body, nil
	}
	var why string
	switch {
	case err != nil:
		why = "the input ended inside a message"
	case stop == off+n:
		why = fmt.Sprintf("the message ends inside a JSON value (is Content-Length %d too small?)", n)
	case h.scan.state == stDone:
		why = fmt.Sprintf("Content-Length %d is longer than the message (%d bytes)", n, stop-off)
	default:
		why = fmt.Sprintf("invalid JSON at byte %d of the message", stop-off)
	}
	return nil, h.answerBad(off, stop, why)
}

// badBody answers a message found where headers should be, or after bad
// headers: the message is scanned to its end for its id, then the reader
// resynchronises.
func (h *headerReader) badBody(off, limit int, exact bool, why string) error {
	stop, _, _ := scanValue(&h.src, &h.scan, off, limit, exact)
	return h.answerBad(off, stop, why)
}

// answerBad builds the answer to the bad message at off..stop. When the
// message is one complete JSON value its end is certain and reading goes
// on right after it; otherwise the reader resyncs from off. At the end of
// the input the answer is still given; the next read reports the end.
func (h *headerReader) answerBad(off, stop int, why string) error {
	d := h.src.data()
	stop = min(stop, len(d))
	id := idFromPrefix(d[off:min(stop, off+keepBufBytes)])
	if h.scan.state == stDone {
		h.src.consume(stop)
	} else {
		h.startResync(off, max(stop, off+1))
	}
	return &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + why, id: id}
}

// garbage answers a line that is not a header and resyncs from just after
// its first byte (the line may hold a header further on).
func (h *headerReader) garbage(off int, why string) error {
	h.startResync(off+1, off+1)
	return &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + why}
}

// findFrameStart consumes input up to the next frame start: a valid
// "Content-Length:" header line, anywhere, or '{' or '[' at the start of a
// line outside the answered frame.
func (h *headerReader) findFrameStart() error {
	const pat = "content-length:"
	i := h.from
	for {
		d := h.src.data()
	scan:
		for ; i < len(d); i++ {
			switch c := d[i]; {
			case c == 'c' || c == 'C':
				if len(d)-i < len(pat) {
					break scan
				}
				if !strings.EqualFold(string(d[i:i+len(pat)]), pat) {
					continue
				}
				ok, more := lengthLineAt(d[i:])
				if more {
					break scan
				}
				if ok {
					h.src.consume(i)
					h.resync = false
					return nil
				}
			case c == '{' || c == '[':
				if i >= h.quiet && i > 0 && (d[i-1] == '\n' || d[i-1] == '\r') {
					h.src.consume(i)
					h.resync = false
					return nil
				}
			}
		}
		// Keep the byte before i (to see a line start) and what a match at
		// i still needs; the rest is skipped.
		if keep := i - 1; keep > 0 {
			h.src.consume(keep)
			i -= keep
			h.quiet = max(0, h.quiet-keep)
		}
		if err := h.src.more(); err != nil {
			return err
		}
	}
}

// lengthLineAt says whether b, which starts with "Content-Length:" in any
// case, goes on into a complete, valid Content-Length header line; more
// means b ends before that can be told. It looks at no more bytes than
// the line needs, so a search through garbage stays linear.
func lengthLineAt(b []byte) (ok, more bool) {
	i := len("content-length:")
	skipBlanks := func() {
		for i < len(b) && i <= maxHeaderLine && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
	}
	skipBlanks()
	digits := i
	for i < len(b) && i <= maxHeaderLine && isDigit(b[i]) {
		i++
	}
	hasDigits := i > digits
	skipBlanks()
	switch {
	case i > maxHeaderLine:
		return false, false
	case i == len(b):
		return false, true
	}
	return hasDigits && (b[i] == '\r' || b[i] == '\n'), false
}

var errLineTooLong = errors.New("line too long")

// line returns the line at off without its terminator ("\r\n", "\n" or a
// lone "\r") and the offset after it.
func (h *headerReader) line(off int) (line []byte, next int, err error) {
	from := off
	for {
		d := h.src.data()
		j := bytes.IndexAny(d[from:], "\r\n")
		if j < 0 {
			if len(d)-off > maxHeaderLine {
				return nil, 0, errLineTooLong
			}
			from = len(d)
			if err := h.src.more(); err != nil {
				return nil, 0, err
			}
			continue
		}
		j += from
		if j-off > maxHeaderLine {
			return nil, 0, errLineTooLong
		}
		if d[j] == '\n' {
			return d[off:j], j + 1, nil
		}
		if j+1 == len(d) { // a '\r': is a '\n' next?
			if err := h.src.more(); err == nil {
				continue
			}
			return d[off:j], j + 1, nil
		}
		if d[j+1] == '\n' {
			return d[off:j], j + 2, nil
		}
		return d[off:j], j + 1, nil
	}
}

// headerLine splits "Name: value". The name must be an HTTP token.
func headerLine(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	for _, c := range line[:i] {
		if !isTokenChar(c) {
			return nil, nil, false
		}
	}
	return line[:i], bytes.Trim(line[i+1:], " \t"), true
}

func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', isDigit(c):
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// parseLength reads a Content-Length value: decimal digits only. A value
// too big for int64 reads as math.MaxInt64, which no limit admits.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		if n > (math.MaxInt64-9)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// lineReader reads NDJSON: one message per line. A line ends at "\n",
// "\r\n" or a lone "\r"; blank lines are skipped. A line is one JSON value:
// a broken line is answered with the id its first bytes hold, and every
// further message glued onto the same line is answered too, so no request
// goes unanswered; the next line is read as usual.
type lineReader struct {
	src   source
	max   int
	scan  jsonScanner
	queue []*frameError
}

func (l *lineReader) pending() bool { return len(l.queue) > 0 || l.src.buffered() > 0 }

func (l *lineReader) readFrame() ([]byte, error) {
	for {
		if len(l.queue) > 0 {
			e := l.queue[0]
			l.queue = l.queue[1:]
			return nil, e
		}
		if err := l.src.skipSpace(); err != nil {
			return nil, err
		}
		n, err := l.lineEnd()
		if err != nil {
			return nil, err
		}
		if n < 0 {
			continue // an oversized line, answered and skipped
		}
		line := l.src.data()[:n]
		l.src.consume(n)
		if body := l.judge(line); body != nil {
			return body, nil
		}
	}
}

// lineEnd returns the length of the line that starts at the input, or -1
// after it skipped a line over the limit (and queued its answer). A last
// line without a terminator still counts.
func (l *lineReader) lineEnd() (int, error) {
	from := 0
	for {
		d := l.src.data()
		if j := bytes.IndexAny(d[from:], "\r\n"); j >= 0 && from+j <= l.max {
			return from + j, nil
		}
		if len(d) > l.max {
			return -1, l.skipLong()
		}
		from = len(d)
		if err := l.src.more(); err != nil {
			if len(d) > 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
				return len(d), nil
			}
			return 0, err
		}
	}
}

// skipLong consumes a line longer than the limit and queues its answer.
func (l *lineReader) skipLong() error {
	d := l.src.data()
	id := idFromPrefix(d[:min(len(d), idPeekBytes)])
	total := 0
	for {
		d := l.src.data()
		if j := bytes.IndexAny(d, "\r\n"); j >= 0 {
			l.src.consume(j)
			total += j
			break
		}
		l.src.consume(len(d))
		total += len(d)
		if err := l.src.more(); err != nil {
			if err != io.EOF {
				return err
			}
			break
		}
	}
	l.queue = append(l.queue, tooLarge(fmt.Sprintf("%d", total), l.max, id))
	return nil
}

// maxGluedAnswers bounds the answers given for one NDJSON line holding
// several messages.
const maxGluedAnswers = 64

// judge returns the message on line, or nil after queueing the answers to
// a malformed line.
func (l *lineReader) judge(line []byte) []byte {
	first := true
	off := 0
	for {
		for off < len(line) && isJSONSpace(line[off]) {
			off++
		}
		if off == len(line) {
			return nil
		}
		l.scan.reset()
		n, res := l.scan.scan(line[off:])
		if res == scanMore && l.scan.end() {
			res = scanDone
		}
		end := off + n
		rest := end
		for rest < len(line) && isJSONSpace(line[rest]) {
			rest++
		}
		glued := rest < len(line) && (line[rest] == '{' || line[rest] == '[') && (line[off] == '{' || line[off] == '[')
		var why string
		switch {
		case res == scanDone && first && rest == len(line):
			return line[off:end]
		case res == scanDone && (glued || !first):
			why = "more than one message on a line (NDJSON takes one message per line)"
		case res == scanDone:
			res, why = scanError, fmt.Sprintf("unexpected data after the message at byte %d of the line", rest)
		case res == scanMore:
			why = "the line ends inside a JSON value"
		default:
			why = fmt.Sprintf("invalid JSON at byte %d of the line", end)
		}
		if len(l.queue) == maxGluedAnswers {
			why = fmt.Sprintf("more than %d messages on one line; the rest of the line is skipped", maxGluedAnswers)
			res = scanError
		}
		l.queue = append(l.queue, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: " + why, id: idFromPrefix(line[off:end])})
		if res != scanDone {
			return nil
		}
		first = false
		off = end
	}
}

func tooLarge(size string, limit int, id json.RawMessage) *frameError {
	return &frameError{
		code: jsonrpc2.CodeInvalidRequest,
		msg:  fmt.Sprintf("invalid request: a message of %s bytes exceeds the limit of %d bytes", size, limit),
		id:   id,
	}
}

// idFromPrefix walks the top-level keys of a JSON object prefix and returns
// the "id" value if it appears, complete and valid, before the prefix ends.
// Nested "id" keys are never mistaken for it.
func idFromPrefix(prefix []byte) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(prefix))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		if key, _ := t.(string); key == "id" {
			t, err := dec.Token()
			if err != nil {
				return nil
			}
			var raw json.RawMessage
			switch v := t.(type) {
			case string:
				raw, _ = json.Marshal(v)
			case json.Number:
				raw = json.RawMessage(v)
			}
			if validID(raw) {
				return raw
			}
			return nil
		}
		if skipValue(dec) != nil {
			return nil
		}
	}
	return nil
}

// skipValue consumes one complete value from dec.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}
