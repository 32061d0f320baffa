package rpc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
}

// frameWriter appends one framed message to dst.
type frameWriter func(dst, body []byte) []byte

func newFrameReader(f Framing, r io.Reader, max int) frameReader {
	br := bufio.NewReaderSize(r, 64<<10)
	if f == FramingNDJSON {
		return &lineReader{r: br, max: max}
	}
	return &headerReader{r: br, max: max}
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

// headerReader reads LSP frames. Header names match case-insensitively, as
// HTTP header names do; unknown headers (Content-Type) are ignored. After a
// fault that loses the frame boundary it skips input up to the next
// Content-Length header.
type headerReader struct {
	r      *bufio.Reader
	max    int
	buf    []byte
	resync bool
}

func (h *headerReader) readFrame() ([]byte, error) {
	length := -1
	sawHeader := false
	for {
		line, err := readLine(h.r, maxHeaderLine)
		if errors.Is(err, errLineTooLong) {
			if h.resync {
				continue
			}
			h.resync = true
			return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: header line too long"}
		}
		if err != nil {
			if err == io.EOF && (sawHeader || length >= 0) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			if !sawHeader {
				continue // blank lines between frames are harmless
			}
			if length < 0 {
				h.resync = true
				return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: missing Content-Length header"}
			}
			break
		}
		if h.resync {
			// A body without a trailing newline runs into the next header
			// line; pick the header out of it.
			if i := indexFold(line, "content-length:"); i > 0 {
				line = line[i:]
			}
		}
		name, value, ok := strings.Cut(string(line), ":")
		isLength := ok && strings.EqualFold(strings.TrimSpace(name), "Content-Length")
		if !ok {
			if h.resync {
				continue
			}
			h.resync = true
			return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: expected a Content-Length header, got a line without a colon"}
		}
		if h.resync && !isLength {
			continue
		}
		h.resync = false
		sawHeader = true
		if isLength {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 {
				h.resync = true
				return nil, &frameError{code: jsonrpc2.CodeParseError, msg: "parse error: bad Content-Length value"}
			}
			length = n
		}
	}
	if length > h.max {
		id, err := discard(h.r, int64(length))
		if err != nil {
			return nil, err
		}
		return nil, tooLarge(length, h.max, id)
	}
	if cap(h.buf) < length || cap(h.buf) > keepBufBytes {
		h.buf = make([]byte, length, max(length, 512))
	}
	h.buf = h.buf[:length]
	if _, err := io.ReadFull(h.r, h.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return h.buf, nil
}

// lineReader reads NDJSON: one message per line; blank lines are skipped.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func (l *lineReader) readFrame() ([]byte, error) {
	for {
		if cap(l.buf) > keepBufBytes {
			l.buf = nil
		}
		l.buf = l.buf[:0]
		var peek []byte
		total := 0
		for {
			chunk, err := l.r.ReadSlice('\n')
			total += len(chunk)
			switch {
			case total <= l.max:
				l.buf = append(l.buf, chunk...)
			case peek == nil:
				all := append(l.buf, chunk...)
				peek = append([]byte(nil), all[:min(len(all), idPeekBytes)]...)
				l.buf = l.buf[:0]
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && total > 0 {
				break // a last line without a newline still counts
			}
			if err != nil {
				return nil, err
			}
			break
		}
		if peek != nil {
			return nil, tooLarge(total, l.max, idFromPrefix(peek))
		}
		line := bytes.TrimSpace(l.buf)
		if len(line) == 0 {
			continue
		}
		return line, nil
	}
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line without its "\n" or "\r\n". A line longer than
// limit is consumed and reported as errLineTooLong.
func readLine(r *bufio.Reader, limit int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && len(line) > limit) {
		for err == bufio.ErrBufferFull {
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return nil, err
		}
		return nil, errLineTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// discard skips n bytes of an oversized frame, returning the request id
// found in its first bytes, if any.
func discard(r *bufio.Reader, n int64) (json.RawMessage, error) {
	prefix := make([]byte, min(n, idPeekBytes))
	if _, err := io.ReadFull(r, prefix); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	if _, err := io.CopyN(io.Discard, r, n-int64(len(prefix))); err != nil {
		return nil, io.ErrUnexpectedEOF
	}
	return idFromPrefix(prefix), nil
}

func tooLarge(n, limit int, id json.RawMessage) *frameError {
	return &frameError{
		code: jsonrpc2.CodeInvalidRequest,
		msg:  fmt.Sprintf("message of %d bytes exceeds the limit of %d bytes", n, limit),
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

// indexFold returns the index of the first ASCII-case-insensitive match of
// lower (which must be lower case) in b, or -1.
func indexFold(b []byte, lower string) int {
	n := len(lower)
	for i := 0; i+n <= len(b); i++ {
		if strings.EqualFold(string(b[i:i+n]), lower) {
			return i
		}
	}
	return -1
}
