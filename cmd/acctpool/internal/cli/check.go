package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/pgstore"
	"github.com/acctpool/acctpool/internal/filecheck"
)

const checkUsage = `check [--plugin FILE]... [file flags]

Validates anthropic-auth.json, anthropic-auth-state.json, the routing-state
file and the plugin manifests without changing them. Every problem names the
file, the key path (or line and column), the value found, what was expected
and what acctpool does instead, and is an error or a warning. File modes and
missing directories are checked too. Exit status: 0 without errors, 1 with
errors, 2 on a bad argument.`

// Check is `acctpool check`.
func Check(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	var c common
	fset := newFlags("check", stderr, checkUsage)
	c.register(fset)
	var manifests multiFlag
	fset.Var(&manifests, "plugin", "a plugin manifest file to check as well (repeatable)")
	if code, ok := parseFlags(fset, args); !ok {
		return code
	}
	if fset.NArg() > 0 {
		return fail(stderr, "check", usageErr("unexpected argument %q", fset.Arg(0)))
	}
	spec, err := c.storeSpec(env)
	if err != nil {
		return fail(stderr, "check", err)
	}
	if spec.Shared() {
		// The pool lives in the database; its values are reported, naming
		// the store, by the server and the commands that read it.
		fmt.Fprintf(stdout, "note: the pool is in the store postgres %s; check validates this machine's files and the plugin manifests only\n", pgstore.RedactConnString(spec.URL))
	}
	paths := c.paths(env)
	for _, line := range []struct{ name, path string }{{"config", paths.Config}, {"state", paths.State}, {"routing state", paths.RoutingState}} {
		status := "present"
		if _, err := os.Stat(line.path); errors.Is(err, fs.ErrNotExist) {
			status = "absent"
		}
		fmt.Fprintf(stdout, "%-14s %s (%s)\n", line.name, line.path, status)
	}
	found := filecheck.Files(context.Background(), paths, manifests)
	errs, warns := 0, 0
	for _, f := range found {
		fmt.Fprintln(stdout, f.String())
		if f.Severity == filecheck.SevError {
			errs++
		} else {
			warns++
		}
	}
	if len(found) == 0 {
		fmt.Fprintln(stdout, "no problems found")
	} else {
		fmt.Fprintf(stdout, "%s, %s\n", plural(errs, "error"), plural(warns, "warning"))
	}
	if errs > 0 {
		return exitNone
	}
	return exitOK
}

// LogFindings logs what check would report, one line per finding; the
// server does the same at start (filecheck.Log).
func LogFindings(ctx context.Context, paths core.Paths, log *slog.Logger) {
	filecheck.Log(ctx, paths, log)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
