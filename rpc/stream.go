package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	gojson "github.com/goccy/go-json"
	"github.com/sourcegraph/jsonrpc2"
)

// stream is the hardened jsonrpc2.ObjectStream the connection reads and
// writes through. sourcegraph/jsonrpc2 closes the connection on any input
// it cannot decode; stream checks every message first and answers the bad
// ones itself, so the library only ever sees well-formed requests and
// responses:
//
//	malformed JSON, bad framing          -32700
//	not a request or response, bad id    -32600
//	a batch array                        -32600, batches are not supported
//	a frame over the size limit          -32600, the frame is skipped
//	nesting deeper than maxNesting       -32600
//
// Whenever the id of a bad message can be read from its first bytes, the
// answer carries it.
//
// It also owns the one writer: every frame, from the library or from
// stream itself, is written whole under one mutex, so frames never
// interleave.
type stream struct {
	in     frameReader
	closer io.Closer

	wmu   sync.Mutex
	out   io.Writer
	frame frameWriter
	wbuf  []byte

	onReadErr func(error)
}

var _ jsonrpc2.ObjectStream = (*stream)(nil)

func newStream(f Framing, r io.Reader, w io.Writer, maxFrame int) *stream {
	s := &stream{in: newFrameReader(f, r, maxFrame), out: w, frame: frameWriterFor(f)}
	if c, ok := r.(io.Closer); ok {
		s.closer = c
	}
	return s
}

// ReadObject implements jsonrpc2.ObjectStream. It returns only a message
// that passed checkMessage, or the error that ended the input.
func (s *stream) ReadObject(v any) error {
	for {
		body, err := s.in.readFrame()
		var ferr *frameError
		if errors.As(err, &ferr) {
			s.writeError(ferr.id, ferr.code, ferr.msg)
			continue
		}
		if err != nil {
			if s.onReadErr != nil {
				s.onReadErr(err)
			}
			return err
		}
		if id, code, msg := checkMessage(body); code != 0 {
			s.writeError(id, code, msg)
			continue
		}
		// The body is valid JSON already; call the library's decoder
		// directly rather than have encoding/json scan it once more.
		if u, ok := v.(json.Unmarshaler); ok {
			err = u.UnmarshalJSON(body)
		} else {
			err = json.Unmarshal(body, v)
		}
		if err != nil {
			s.writeError(nil, jsonrpc2.CodeInvalidRequest, "invalid request: "+err.Error())
			continue
		}
		return nil
	}
}

// inputPending reports whether more input is buffered already. Only the
// read goroutine (the one calling ReadObject, and Handle) may call it.
func (s *stream) inputPending() bool { return s.in.pending() }

// WriteObject implements jsonrpc2.ObjectStream.
func (s *stream) WriteObject(obj any) error {
	var body []byte
	var err error
	if m, ok := obj.(json.Marshaler); ok {
		body, err = m.MarshalJSON() // compact already: the library encodes with encoding/json
	} else {
		body, err = gojson.Marshal(obj)
	}
	if err != nil {
		return err
	}
	return s.writeFrame(body)
}

// Close implements jsonrpc2.ObjectStream; it closes the input so that a
// blocked read returns.
func (s *stream) Close() error {
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

func (s *stream) writeFrame(body []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.wbuf = s.frame(s.wbuf[:0], body)
	_, err := s.out.Write(s.wbuf)
	if cap(s.wbuf) > keepBufBytes {
		s.wbuf = nil
	}
	return err
}

// writeError answers a message the library never sees.
func (s *stream) writeError(id json.RawMessage, code int64, msg string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	body, _ := gojson.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   errorBody       `json:"error"`
	}{"2.0", id, errorBody{code, msg, errorData{Kind: kindForCode(code)}}})
	_ = s.writeFrame(body)
}

type errorBody struct {
	Code    int64     `json:"code"`
	Message string    `json:"message"`
	Data    errorData `json:"data"`
}

func kindForCode(code int64) string {
	if code == jsonrpc2.CodeParseError {
		return "parse_error"
	}
	return "invalid_request"
}

// envelope is the outline of a message, enough to judge its shape.
type envelope struct {
	JSONRPC *string         `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  json.RawMessage `json:"method"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// checkMessage judges one frame. A zero code means the library may decode
// it; otherwise the frame is answered with (id, code, msg).
func checkMessage(body []byte) (id json.RawMessage, code int64, msg string) {
	if first := firstByte(body); first == '[' {
		if !gojson.Valid(body) {
			return nil, jsonrpc2.CodeParseError, "parse error: invalid JSON"
		}
		return nil, jsonrpc2.CodeInvalidRequest, "invalid request: batch requests are not supported"
	}
	if depth := nestingDepth(body, maxNesting); depth > maxNesting {
		return idFromPrefix(body), jsonrpc2.CodeInvalidRequest,
			fmt.Sprintf("invalid request: objects and arrays are nested more than %d levels deep (the limit)", maxNesting)
	}
	var env envelope
	if err := gojson.Unmarshal(body, &env); err != nil {
		var syn *gojson.SyntaxError
		if errors.As(err, &syn) {
			return idFromPrefix(body), jsonrpc2.CodeParseError, fmt.Sprintf("parse error: %s at offset %d", syn.Error(), syn.Offset)
		}
		return nil, jsonrpc2.CodeInvalidRequest, "invalid request: a message must be a JSON object"
	}
	hasID := env.ID != nil
	if hasID && !validID(env.ID) {
		return nil, jsonrpc2.CodeInvalidRequest, "invalid request: id must be a string or an integer from 0 to 2^53-1"
	}
	id = env.ID
	if env.JSONRPC == nil || *env.JSONRPC != "2.0" {
		return id, jsonrpc2.CodeInvalidRequest, `invalid request: "jsonrpc" must be "2.0"`
	}
	isResponse := env.Result != nil || env.Error != nil
	switch {
	case env.Method != nil && isResponse:
		return id, jsonrpc2.CodeInvalidRequest, "invalid request: a message cannot have both method and result or error"
	case env.Method != nil:
		if len(env.Method) < 2 || env.Method[0] != '"' {
			return id, jsonrpc2.CodeInvalidRequest, "invalid request: method must be a string"
		}
	case isResponse:
		if !hasID {
			return nil, jsonrpc2.CodeInvalidRequest, "invalid request: a response needs an id"
		}
	default:
		return id, jsonrpc2.CodeInvalidRequest, "invalid request: not a request, notification or response"
	}
	return nil, 0, ""
}

// maxNesting is how deeply objects and arrays may nest in a message. No
// request of the protocol comes near it; it keeps a hostile message from
// costing the decoders deep recursion, and lets such a message be refused
// with a reason (-32600) rather than as a parse error.
const maxNesting = 128

// nestingDepth returns how deeply objects and arrays nest in the JSON text
// b, counting no further than limit+1.
func nestingDepth(b []byte, limit int) int {
	depth, deepest := 0, 0
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			if depth++; depth > deepest {
				if deepest = depth; deepest > limit {
					return deepest
				}
			}
		case '}', ']':
			depth--
		}
	}
	return deepest
}

// validID accepts what the library can echo unchanged: a string, or an
// integer from 0 to 2^53-1 written in plain digits.
func validID(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	if raw[0] == '"' {
		return true // the decoder has checked the string
	}
	if len(raw) > 16 {
		return false
	}
	var n uint64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + uint64(c-'0')
	}
	return n < 1<<53
}

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}
