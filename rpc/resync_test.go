package rpc

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pingBody(id int) string { return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"ping"}`, id) }

func lspFrame(body string) string {
	return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

// answer is one response a malformed input must get.
type answer struct {
	id   string // the id as JSON
	code int64  // 0: a result
	text string // substring of the message
}

// resyncCase is one malformed input. After it come three well-formed
// pings; every one must be answered with a result, the bad input must get
// exactly the answers listed, and nothing else may be written.
type resyncCase struct {
	name  string
	input string
	want  []answer
	// alone: the answers come before any later input is sent (the host
	// may wait for them). Inputs whose end is only visible once more bytes
	// arrive (a Content-Length that is too long) leave it false.
	alone bool
	// split is what is answered instead when the input arrives byte by
	// byte: headers whose body has not arrived yet are answered without
	// the body's id, and the body is answered on its own.
	split []answer
}

var lspResyncCases = []resyncCase{
	{name: "truncated frame", input: "Content-Length: 60\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"pi`,
		want: []answer{{"1", -32700, "invalid JSON"}}},
	{name: "truncated frame cut between members", input: "Content-Length: 60\r\n\r\n" + `{"jsonrpc":"2.0","id":1,`,
		want: []answer{{"1", -32700, "invalid JSON"}}},
	{name: "missing blank line after headers", input: fmt.Sprintf("Content-Length: %d\r\n%s", len(pingBody(2)), pingBody(2)),
		want: []answer{{"2", -32700, "blank line"}}, alone: true},
	{name: "Content-Length 5 too long", input: fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(pingBody(3))+5, pingBody(3)),
		want: []answer{{"3", -32700, "longer than the message"}}},
	{name: "Content-Length 5 too short", input: fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(pingBody(4))-5, pingBody(4)),
		want: []answer{{"4", -32700, "too small"}}},
	{name: "stray bytes run into the next header", input: `"}`,
		want: []answer{{"null", -32700, "header line"}}},
	{name: "message without headers", input: pingBody(5),
		want: []answer{{"5", -32700, "without a Content-Length"}}, alone: true},
	{name: "Content-Length over the limit", input: "Content-Length: 1000000000000000\r\n\r\n" + pingBody(6),
		want: []answer{{"6", -32600, "exceeds"}}, alone: true, split: []answer{{"null", -32600, "exceeds"}}},
	{name: "Content-Length over int64", input: "Content-Length: 99999999999999999999999\r\n\r\n" + pingBody(7),
		want: []answer{{"7", -32600, "exceeds"}}, alone: true, split: []answer{{"null", -32600, "exceeds"}}},
	{name: "negative Content-Length", input: "Content-Length: -5\r\n\r\n" + pingBody(8),
		want: []answer{{"8", -32700, "Content-Length"}}, alone: true,
		split: []answer{{"null", -32700, "Content-Length"}, {"8", -32700, "without a Content-Length"}}},
	{name: "Content-Length not a number", input: "Content-Length: ten\r\n\r\n",
		want: []answer{{"null", -32700, "Content-Length"}}, alone: true},
	{name: "missing Content-Length", input: "Content-Type: x\r\n\r\n" + pingBody(9),
		want: []answer{{"9", -32700, "missing Content-Length"}}, alone: true,
		split: []answer{{"null", -32700, "missing Content-Length"}, {"9", -32700, "without a Content-Length"}}},
	{name: "conflicting Content-Length", input: fmt.Sprintf("Content-Length: %d\r\nContent-Length: 3\r\n\r\n%s", len(pingBody(10)), pingBody(10)),
		want: []answer{{"10", -32700, "conflicting"}}, alone: true,
		split: []answer{{"null", -32700, "conflicting"}, {"10", -32700, "without a Content-Length"}}},
	{name: "line without colon", input: "hello world\r\n",
		want: []answer{{"null", -32700, "header line"}}, alone: true},
	{name: "header line too long", input: strings.Repeat("x", 5000) + "\r\n",
		want: []answer{{"null", -32700, "too long"}}, alone: true},
	{name: "body is not JSON", input: lspFrame("hello"),
		want: []answer{{"null", -32700, "invalid JSON"}}, alone: true},
	{name: "header mid-line after garbage", input: "garbage}",
		want: []answer{{"null", -32700, "header line"}}},
	{name: "CR-only header endings are accepted", input: fmt.Sprintf("Content-Length: %d\r\r%s", len(pingBody(11)), pingBody(11)),
		want: []answer{{"11", 0, ""}}, alone: true},
	{name: "trailing newline counted in the length", input: lspFrame(pingBody(12) + "\r\n"),
		want: []answer{{"12", 0, ""}}, alone: true},
	{name: "deeply nested params", input: lspFrame(`{"jsonrpc":"2.0","id":13,"method":"ping","params":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`),
		want: []answer{{"13", -32600, "nested"}}, alone: true},
}

var ndjsonResyncCases = []resyncCase{
	{name: "truncated line", input: `{"jsonrpc":"2.0","id":1,"method":"pi` + "\n",
		want: []answer{{"1", -32700, "ends inside"}}, alone: true},
	{name: "truncated line with LF only inside a value", input: `{"jsonrpc":"2.0","id":2,` + "\n",
		want: []answer{{"2", -32700, "ends inside"}}, alone: true},
	{name: "CR-only line endings", input: pingBody(3) + "\r" + pingBody(4) + "\r",
		want: []answer{{"3", 0, ""}, {"4", 0, ""}}, alone: true},
	{name: "two messages on one line", input: pingBody(5) + pingBody(6) + "\n",
		want: []answer{{"5", -32700, "more than one"}, {"6", -32700, "more than one"}}, alone: true},
	{name: "garbage line", input: "hello\n",
		want: []answer{{"null", -32700, "invalid JSON"}}, alone: true},
	{name: "broken then glued", input: `{"jsonrpc":"2.0","id":7,"meth{"x":1}` + "\n",
		want: []answer{{"7", -32700, "invalid JSON"}}, alone: true},
	{name: "message split over lines", input: "{\"jsonrpc\":\"2.0\",\n\"id\":8,\"method\":\"ping\"}\n",
		want: []answer{{"null", -32700, "ends inside"}, {"null", -32700, "unexpected data"}}, alone: true},
	{name: "line over the limit", input: `{"jsonrpc":"2.0","id":9,"method":"ping","params":{"pad":"` + pad(5000) + `"}}` + "\n",
		want: []answer{{"9", -32600, "exceeds"}}, alone: true},
	{name: "deeply nested params", input: `{"jsonrpc":"2.0","id":10,"method":"ping","params":` + strings.Repeat(`{"a":`, 200) + "1" + strings.Repeat("}", 200) + "}\n",
		want: []answer{{"10", -32600, "nested"}}, alone: true},
}

// TestServer_resync sends each malformed input followed by three pings, in
// one write, byte by byte, and (where the input can be answered on its
// own) waiting for the answer in between.
func TestServer_resync(t *testing.T) {
	for _, f := range framings {
		cases := lspResyncCases
		if f == FramingNDJSON {
			cases = ndjsonResyncCases
		}
		for _, tc := range cases {
			for _, mode := range []string{"one write", "byte by byte", "answer first"} {
				if mode == "answer first" && !tc.alone {
					continue
				}
				t.Run(string(f)+"/"+tc.name+"/"+mode, func(t *testing.T) {
					c := startClient(t, f, harnessOpts{mutate: func(o *Options) {
						if f == FramingNDJSON {
							o.MaxFrameBytes = 4096
						}
					}})
					c.initialize()
					c.nextID = 1000 // clear of the ids in the inputs
					var later strings.Builder
					for id := 101; id <= 103; id++ {
						later.Write(c.frame(nil, []byte(pingBody(id))))
					}
					var got []msg
					switch mode {
					case "one write":
						c.sendRaw(tc.input + later.String())
					case "byte by byte":
						for _, b := range []byte(tc.input + later.String()) {
							c.sendRaw(string([]byte{b}))
						}
					case "answer first":
						c.sendRaw(tc.input)
						for range tc.want {
							got = append(got, c.next())
						}
						c.sendRaw(later.String())
					}
					// A final ping marks the end: everything before its
					// answer belongs to the input and the three pings.
					last := c.request("ping", nil)
					for {
						m := c.next()
						if string(m.ID) == fmt.Sprint(last) {
							break
						}
						got = append(got, m)
					}
					want := append([]answer(nil), tc.want...)
					if mode == "byte by byte" && tc.split != nil {
						want = append([]answer(nil), tc.split...)
					}
					for id := 101; id <= 103; id++ {
						want = append(want, answer{id: fmt.Sprint(id)})
					}
					require.Len(t, got, len(want), "answers: %s", describe(got))
					for i, w := range want {
						m := got[i]
						assert.Equal(t, w.id, string(m.ID), "answer %d: %s", i, describe(got))
						if w.code == 0 {
							assert.Nil(t, m.Error, "answer %d should be a result: %s", i, describe(got))
							continue
						}
						if assert.NotNil(t, m.Error, "answer %d should be an error", i) {
							assert.Equal(t, w.code, m.Error.Code, m.Error.Message)
							assert.Contains(t, m.Error.Message, w.text)
						}
					}
				})
			}
		}
	}
}

func describe(ms []msg) string {
	var b strings.Builder
	for _, m := range ms {
		if m.Error != nil {
			fmt.Fprintf(&b, "[id %s error %d %q] ", m.ID, m.Error.Code, m.Error.Message)
		} else {
			fmt.Fprintf(&b, "[id %s result] ", m.ID)
		}
	}
	return b.String()
}

func TestLineReader_gluedAnswersBounded(t *testing.T) {
	line := strings.Repeat(pingBody(1), 1000) + "\n" + pingBody(2) + "\n"
	r := newFrameReader(FramingNDJSON, strings.NewReader(line), 1<<20)
	bodies := drain(t, r, len(line))
	require.Len(t, bodies, 1)
	assert.Equal(t, pingBody(2), string(bodies[0]))
	lr := newFrameReader(FramingNDJSON, strings.NewReader(line), 1<<20)
	answers := 0
	for {
		_, err := lr.readFrame()
		var ferr *frameError
		if !errors.As(err, &ferr) {
			break
		}
		answers++
	}
	assert.Equal(t, maxGluedAnswers+1, answers)
}
