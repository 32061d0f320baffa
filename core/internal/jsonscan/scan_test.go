package jsonscan

import (
	"bytes"
	"errors"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodeAny decodes the scanner's next value the way json.Unmarshal into
// an any does: objects as maps, arrays as slices, numbers as float64.
func decodeAny(s *Scanner) (any, error) {
	switch s.Peek() {
	case Object:
		m := map[string]any{}
		err := s.Object(func(key []byte) error {
			k := string(key)
			v, err := decodeAny(s)
			m[k] = v
			return err
		})
		return m, err
	case Array:
		out := []any{}
		err := s.Array(func() error {
			v, err := decodeAny(s)
			out = append(out, v)
			return err
		})
		return out, err
	case String:
		return s.String()
	case Number:
		return s.Float64()
	case Bool:
		return s.Bool()
	case Null:
		_, err := s.Null()
		return nil, err
	}
	return nil, s.Skip()
}

func scanAny(data []byte) (any, error) {
	s := New(data)
	v, err := decodeAny(s)
	if err != nil {
		return nil, err
	}
	return v, s.End()
}

var seeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12.25E-2`, `"x"`,
	`{"a":1,"b":[1,2,{"c":null}],"d":"\u00e9\n\"\\\/","e":true}`,
	` { "a" : [ ] , "b" : { } } `,
	`"\ud83d\ude00 \ud800 \udc00x \ud800\u0041"`, "\"\xff\xfe ok \xe2\x80\xa8\"",
	`{"a":1,"a":2}`, `[1e400]`, `{"k":"<a&b>"}`,
	// invalid
	`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `1e`, `-`, `"abc`, "\"a\x01\"", `"\x"`, `"\u12"`,
	`tru`, `nul`, `{"a":1}x`, `[1 2]`, `{1:2}`, `{"a" 1}`, ``, `  `,
}

// FuzzScanner: on valid input the scanner decodes what goccy/go-json
// decodes into an any; on invalid input both refuse it, the scanner with
// a SyntaxError whose offset lies in the input.
func FuzzScanner(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want any
		werr := json.Unmarshal(data, &want)
		got, gerr := scanAny(data)
		var te *TypeError
		if errors.As(gerr, &te) {
			// A number out of float64's range: goccy refuses it too.
			require.Error(t, werr, "scanner refused a number goccy took: %q", data)
			return
		}
		if werr != nil {
			require.Error(t, gerr, "scanner accepted what goccy refused (%v): %q", werr, data)
			var se *SyntaxError
			require.ErrorAs(t, gerr, &se)
			assert.LessOrEqual(t, se.Offset, int64(len(data)))
			return
		}
		require.NoError(t, gerr, "input: %q", data)
		assert.Equal(t, want, got, "input: %q", data)

		// Raw copies of the value, compact and indented, are goccy's.
		for _, indent := range []string{"", "  "} {
			wantOut, err := marshalRaw(data, indent)
			require.NoError(t, err)
			w := NewWriter(indent)
			require.NoError(t, w.Raw(data))
			assert.Equal(t, string(wantOut), string(w.Bytes()), "indent %q, input %q", indent, data)
		}
	})
}

func marshalRaw(data []byte, indent string) ([]byte, error) {
	if indent == "" {
		return json.Marshal(json.RawMessage(data))
	}
	return json.MarshalIndent(json.RawMessage(data), "", indent)
}

func TestScanner_syntaxErrorOffsets(t *testing.T) {
	tests := []struct {
		in     string
		offset int64
	}{
		{"{\n  \"a\": 1,\n  x\n}", 14},
		{`{"a":1,}`, 7},
		{`[1,2`, 4},
		{`{"a":tru}`, 8},
		{`{"a":"b`, 7},
		{`{"a":01}`, 6},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			_, err := scanAny([]byte(tc.in))
			var se *SyntaxError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.offset, se.Offset, se.Error())
		})
	}
}

func TestScanner_typeErrorsReadPastTheValue(t *testing.T) {
	s := New([]byte(`{"n":1.5,"s":{"x":[1,"y"]},"b":"t","i":99999999999999999999,"ok":7}`))
	var got []string
	var ok int64
	require.NoError(t, s.Object(func(key []byte) error {
		k := string(key)
		start := s.Pos()
		var err error
		switch k {
		case "n", "i", "ok":
			var n int64
			n, err = s.Int64()
			if k == "ok" {
				ok = n
			}
		case "s":
			_, err = s.String()
		case "b":
			_, err = s.Bool()
		}
		var te *TypeError
		if errors.As(err, &te) {
			got = append(got, k+"="+string(s.Since(start)))
			return nil
		}
		return err
	}))
	require.NoError(t, s.End())
	assert.Equal(t, []string{`n=1.5`, `s={"x":[1,"y"]}`, `b="t"`, `i=99999999999999999999`}, got)
	assert.EqualValues(t, 7, ok)
}

func TestWriter_members(t *testing.T) {
	for _, indent := range []string{"", "  "} {
		w := NewWriter(indent)
		w.Open('{')
		w.Key("a")
		w.Int(-3)
		w.Key("b<>")
		w.Float(1e21)
		w.Key("c")
		w.Open('[')
		w.String("x\u2028\xff\"\t\x01")
		w.Bool(true)
		w.Null()
		w.Float(0.000001)
		w.Close(']')
		w.Key("d")
		w.Open('{')
		w.Close('}')
		w.Key("e")
		require.NoError(t, w.Raw([]byte(` { "k" : [ 1 , "<" ] } `)))
		w.Close('}')
		want, err := marshalLike(indent, map[string]any{
			"a": -3, "b<>": 1e21, "c": []any{"x\u2028\xff\"\t\x01", true, nil, 0.000001}, "d": map[string]any{},
			"e": json.RawMessage(`{"k":[1,"<"]}`),
		})
		require.NoError(t, err)
		// goccy sorts map keys; our members were written in that order.
		assert.Equal(t, string(want), string(w.Bytes()))
	}
}

func marshalLike(indent string, v any) ([]byte, error) {
	if indent == "" {
		return json.Marshal(v)
	}
	return json.MarshalIndent(v, "", indent)
}

func TestWriter_rawRefusesInvalid(t *testing.T) {
	w := NewWriter("")
	w.Open('[')
	require.Error(t, w.Raw([]byte(`{"a":`)))
	w.Close(']')
	assert.True(t, bytes.HasPrefix(w.Bytes(), []byte("[")))
}
