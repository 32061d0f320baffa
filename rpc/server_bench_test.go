package rpc

import (
	"testing"
)

// BenchmarkServer_roundTrip measures one request/response over in-memory
// pipes, framing to framing, for an inline method (ping), an async one
// (errors/classify) and the hot path (route/select). The spawned-process
// comparison with a bare sourcegraph/jsonrpc2 echo server is rpcload's job
// (cmd/stdio-server/internal/rpcload); this one is for profiling.
func BenchmarkServer_roundTrip(b *testing.B) {
	cases := []struct {
		method string
		params any
	}{
		{"ping", nil},
		{"errors/classify", map[string]any{"source": "messages", "status": 429}},
		{"route/select", map[string]any{"sessionId": "s", "model": "m", "promptBytes": 100}},
	}
	for _, f := range framings {
		for _, tc := range cases {
			b.Run(string(f)+"/"+tc.method, func(b *testing.B) {
				t := &testing.T{}
				c := startClient(t, f, harnessOpts{})
				c.t = t
				c.initialize()
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					c.call(tc.method, tc.params)
				}
				b.StopTimer()
				c.in.Close()
				<-c.done
			})
		}
	}
}

// TestServer_roundTripFixture checks the benchmark's calls answer as
// expected, so the benchmark measures real work.
func TestServer_roundTripFixture(t *testing.T) {
	c := startClient(t, FramingLSP, harnessOpts{})
	c.initialize()
	c.alive()
	m := c.call("errors/classify", map[string]any{"source": "messages", "status": 429})
	if m.Error != nil {
		t.Fatal(m.Error.Message)
	}
}
