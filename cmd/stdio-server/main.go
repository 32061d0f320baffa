// Command stdio-server is acctpool's JSON-RPC 2.0 server on stdin and
// stdout, the server alone (the same as `acctpool serve`). Hosts spawn it
// as a subprocess; see `stdio-server --help`.
package main

import (
	"io"
	"os"

	"github.com/acctpool/acctpool/internal/serve"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// testHookStdoutClaimed, when set by a test, runs right after stdout has
// been claimed for the protocol; the test prints strays there.
var testHookStdoutClaimed func()

// run is the whole program (internal/serve); it returns the exit code. A
// leading "serve" is accepted and dropped, so a host that spawns
// `<binary> serve [flags]` (as the TypeScript client does) can run this
// server-only binary as well as cmd/acctpool.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	return serve.Command{Name: "stdio-server", AfterStdoutClaimed: testHookStdoutClaimed}.Run(args, stdin, stdout, stderr)
}
