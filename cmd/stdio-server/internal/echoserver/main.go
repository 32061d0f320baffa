// Command echoserver is the baseline of the rpcload benchmark: a bare
// sourcegraph/jsonrpc2 server on stdin/stdout whose handler returns the
// request's params, with the library's own framing and no hardening.
// acctpool's overhead is measured against it in the same run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"

	"github.com/sourcegraph/jsonrpc2"
)

type stdio struct{}

func (stdio) Read(p []byte) (int, error)  { return os.Stdin.Read(p) }
func (stdio) Write(p []byte) (int, error) { return os.Stdout.Write(p) }
func (stdio) Close() error                { return os.Stdin.Close() }

func main() {
	framing := flag.String("framing", "lsp", "lsp or ndjson")
	flag.Parse()
	var stream jsonrpc2.ObjectStream
	if *framing == "ndjson" {
		stream = jsonrpc2.NewPlainObjectStream(stdio{})
	} else {
		stream = jsonrpc2.NewBufferedStream(stdio{}, jsonrpc2.VSCodeObjectCodec{})
	}
	echo := jsonrpc2.HandlerWithError(func(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) (any, error) {
		if req.Params == nil {
			return json.RawMessage("{}"), nil
		}
		return req.Params, nil
	})
	<-jsonrpc2.NewConn(context.Background(), stream, echo).DisconnectNotify()
}
