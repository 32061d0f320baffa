package rpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fuzz targets of the wire. `go test` runs their seeds (testdata/fuzz
// and the f.Add calls); scripts/fuzz runs each for a while.

// sentinel is the well-formed request appended to every fuzzed input: it
// must always come out of the reader, whatever came before it.
const sentinel = `{"jsonrpc":"2.0","id":"sentinel-4242","method":"ping"}`

// drain reads frames until the input ends and returns the well-formed
// bodies in order. It fails the test if a read makes no progress.
func drain(t *testing.T, r frameReader, inputLen int) [][]byte {
	var bodies [][]byte
	// Every call consumes input or reports the end: more calls than bytes
	// (plus the answers queued for one line) means a loop.
	for calls := 0; ; calls++ {
		require.LessOrEqual(t, calls, 2*inputLen+16, "the reader stopped making progress")
		body, err := r.readFrame()
		var ferr *frameError
		if errors.As(err, &ferr) {
			assert.True(t, ferr.id == nil || validID(ferr.id), "answer id %q is not a valid id", ferr.id)
			continue
		}
		if err != nil {
			return bodies
		}
		assert.True(t, json.Valid(body), "the reader returned invalid JSON %q", body)
		bodies = append(bodies, bytes.Clone(body))
	}
}

func fuzzReader(f *testing.F, framing Framing, sep string) {
	for _, tc := range lspResyncCases {
		f.Add([]byte(tc.input))
	}
	for _, tc := range ndjsonResyncCases {
		f.Add([]byte(tc.input))
	}
	f.Fuzz(func(t *testing.T, garbage []byte) {
		in := append(bytes.Clone(garbage), sep...)
		in = frameWriterFor(framing)(in, []byte(sentinel))
		r := newFrameReader(framing, bytes.NewReader(in), 4096)
		bodies := drain(t, r, len(in))
		require.NotEmpty(t, bodies, "the request after the garbage was not read")
		assert.Equal(t, sentinel, string(bodies[len(bodies)-1]), "the request after the garbage was not read last")
	})
}

// FuzzLSPReader: after any input and a blank line, a well-formed frame is
// still read, and the reader always makes progress.
func FuzzLSPReader(f *testing.F) { fuzzReader(f, FramingLSP, "\r\n\r\n") }

// FuzzNDJSONReader: after any input and a line end, a well-formed line is
// still read, and the reader always makes progress.
func FuzzNDJSONReader(f *testing.F) { fuzzReader(f, FramingNDJSON, "\n") }

// FuzzJSONScanner holds the frame scanner to encoding/json: the two agree
// on which texts are valid JSON, however the input is split into chunks.
func FuzzJSONScanner(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2,{"a":"\u00e9"}]`, `-0.5e+3`, `"x"`, `tru`, `{"a":1,}`, `[01]`, "\"a\tb\"", ` null `, `1 2`} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, b []byte, split uint8) {
		var sc jsonScanner
		cut := int(split) % (len(b) + 1)
		valid := scanAll(&sc, b[:cut], b[cut:])
		assert.Equal(t, json.Valid(b), valid, "scanner and encoding/json disagree on %q", b)
	})
}

// scanAll feeds the chunks to sc and says whether they form one valid JSON
// text (a value and surrounding whitespace).
func scanAll(sc *jsonScanner, chunks ...[]byte) bool {
	sc.reset()
	all := bytes.Join(chunks, nil)
	off := 0
	for _, c := range chunks {
		n, res := sc.scan(c)
		switch res {
		case scanError:
			return false
		case scanDone:
			return len(bytes.TrimLeft(all[off+n:], " \t\r\n")) == 0
		}
		off += n
	}
	return sc.end()
}

// FuzzCheckMessage: checkMessage never panics, answers with a valid id or
// none, and what it lets through the library can decode.
func FuzzCheckMessage(f *testing.F) {
	for _, s := range malformedSteps {
		if s.body != "" && len(s.body) < 4096 {
			f.Add([]byte(s.body))
		}
	}
	f.Add([]byte(sentinel))
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"result":{"a":[1,2]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		id, code, msg := checkMessage(body)
		assert.True(t, id == nil || validID(id), "id %q is not a valid id", id)
		if code != 0 {
			assert.NotEmpty(t, msg)
			assert.Contains(t, []int64{jsonrpc2.CodeParseError, jsonrpc2.CodeInvalidRequest}, code)
			return
		}
		assert.True(t, json.Valid(body), "an invalid message passed: %q", body)
		assert.LessOrEqual(t, nestingDepth(body, maxNesting), maxNesting)
	})
}

// paramDecoders decodes and checks the params of every method, exactly as
// the method table does, without calling the engine.
var paramDecoders = map[string]func([]byte) error{
	"initialize":            decodeOnly[initializeParams],
	"shutdown":              decodeOnly[noParams],
	"ping":                  decodeOnly[noParams],
	"accounts/list":         decodeOnly[noParams],
	"accounts/get":          decodeOnly[idParams],
	"accounts/add":          decodeOnly[addParams],
	"accounts/remove":       decodeOnly[idParams],
	"accounts/update":       decodeOnly[updateParams],
	"accounts/setMain":      decodeOnly[setMainParams],
	"accounts/login/start":  decodeOnly[loginStartParams],
	"accounts/login/finish": decodeOnly[loginFinishParams],
	"accounts/refresh":      decodeOnly[idParams],
	"accounts/refreshDue":   decodeOnly[noParams],
	"accounts/resetBackoff": decodeOnly[idParams],
	"quota/get":             decodeOnly[optionalIDParams],
	"quota/refresh":         decodeOnly[idParams],
	"quota/refreshDue":      decodeOnly[noParams],
	"quota/observe":         decodeOnly[observeParams],
	"route/select":          decodeOnly[selectParams],
	"route/report":          decodeOnly[reportParams],
	"errors/classify":       decodeOnly[classifyParams],
	"config/get":            decodeOnly[noParams],
	"config/update":         decodeOnly[configUpdateParams],
	"plugins/list":          decodeOnly[noParams],
	"plugins/reload":        decodeOnly[noParams],
	"test/clock/set":        decodeOnly[clockSetParams],
	"test/clock/advance":    decodeOnly[clockAdvanceParams],
	"rpc.discover":          func([]byte) error { return nil }, // takes any params
}

func decodeOnly[P any](raw []byte) error {
	_, err := decodeChecked[P](raw)
	return err
}

func TestParamDecoders_coverEveryMethod(t *testing.T) {
	var names []string
	for name := range paramDecoders {
		names = append(names, name)
	}
	assert.ElementsMatch(t, methodNames(methodTable(true)), names)
}

// FuzzDecodeParams: for every method, any params either decode and pass
// the checks or are refused as invalid params (-32602), never a panic nor
// another error.
func FuzzDecodeParams(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"id":"a"}`, `{"id":5}`, `{"ms":9223372036855}`, `{"nowMs":-1}`,
		`{"status":-1,"route":{"accountId":"a"}}`, `{"mode":"bogus"}`, `{"protocolVersion":"1.0","clientInfo":{"name":"x"}}`,
		`{"processId":null,"capabilities":{}}`, `{"patch":{"routing":{"mode":"main-first"}}}`, `{"source":"usage","status":403}`,
		`{"id":"a","headers":{"anthropic-ratelimit-unified-5h-utilization":"0.5"}}`, `{"type":"api","apiKey":"k"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for name, decode := range paramDecoders {
			err := decode(raw)
			if err == nil {
				continue
			}
			werr := toWireError(err)
			assert.Equal(t, int64(jsonrpc2.CodeInvalidParams), werr.Code, "%s: %v", name, err)
		}
	})
}
