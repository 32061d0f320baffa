// Command acctpool is acctpool's one binary: `acctpool serve` is the
// JSON-RPC 2.0 stdio server that hosts spawn (the same server as
// cmd/stdio-server), and the other subcommands are for the user at a
// terminal. `acctpool help` lists them.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/acctpool/acctpool/cmd/acctpool/internal/cli"
	"github.com/acctpool/acctpool/cmd/acctpool/internal/plugincheck"
	"github.com/acctpool/acctpool/cmd/acctpool/internal/storecmd"
	"github.com/acctpool/acctpool/internal/serve"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one subcommand. run gets the arguments after the
// subcommand's name and returns the exit code.
type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

// commands is the subcommand table, in the order help lists it. Adding a
// subcommand is one line here. (A function rather than a variable, so help
// can list the table it is part of.)
func commands() []command {
	return []command{
		{"serve", "run the JSON-RPC stdio server, as hosts spawn it (acctpool serve --help)", serve.Command{Name: "acctpool serve"}.Run},
		{"status", "show every account: usable or why not, quota bars, what serves next", user(cli.Status)},
		{"statusline", "one short line for editor and shell status bars", user(cli.Statusline)},
		{"check", "validate the config, state and routing files and plugin manifests", user(cli.Check)},
		{"login", "add (or --replace) a fallback OAuth account through the browser", user(cli.Login)},
		{"accounts", "list, remove, enable, disable, move, reset-backoff", user(cli.Accounts)},
		{"add-key", "add an API-key route (the key is read from stdin)", user(cli.AddKey)},
		{"store", "move a pool between the files and a postgres store (store import|export|keygen)", user(storecmd.Run)},
		{"plugin", "check a classification plugin, or write a starter (plugin check|init)", pluginCommand},
		{"version", "print the version", runVersion},
		{"help", "print this help", runHelp},
	}
}

// run dispatches args[0] to its subcommand. No subcommand prints the usage
// to stderr and exits 2, as does an unknown one.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "acctpool: unknown command %q\nTry: acctpool help\n", args[0])
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: acctpool <command> [arguments]\n\nacctpool pools Claude OAuth accounts for editor agents (OpenCode, Pi).\nHosts run `acctpool serve`; the npm packages @acctpool/opencode and\n@acctpool/pi do that for you.\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
}

// user adapts a terminal command to the table: it reads the environment
// of this process.
func user(f func(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int) func([]string, io.Reader, io.Writer, io.Writer) int {
	return func(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
		return f(args, stdin, stdout, stderr, os.Getenv)
	}
}

func pluginCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	return plugincheck.Main(args, stdout, stderr)
}

func runHelp(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		// `acctpool help serve` is `acctpool serve --help`.
		for _, c := range commands() {
			if c.name == args[0] && c.name != "help" {
				return c.run([]string{"--help"}, nil, stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "acctpool: no help for unknown command %q\n", args[0])
		return 2
	}
	printUsage(stdout)
	return 0
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "acctpool version: unexpected argument %q\n", args[0])
		return 2
	}
	fmt.Fprintf(stdout, "acctpool %s\n", serve.Version())
	return 0
}
