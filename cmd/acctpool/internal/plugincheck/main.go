package plugincheck

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"github.com/acctpool/acctpool/conformance/junit"
)

// Exit statuses of Main.
const (
	// ExitOK: the plugin loaded and classified every case without a fault
	// (init: the starter was written).
	ExitOK = 0
	// ExitFailed: the plugin was rejected, faulted on an input, or missed
	// an expectation of a --cases file.
	ExitFailed = 1
	// ExitUsage: bad arguments, an unreadable --cases file, or an output
	// that could not be written.
	ExitUsage = 2
)

const usage = `Usage:
  acctpool plugin check [--cases FILE] [--junit FILE] [--json] MANIFEST
  acctpool plugin init --lang go|assemblyscript [--id ID] DIR

check loads the plugin of MANIFEST exactly as the server does (sha256,
ABI errclass v1 validation, limits, _initialize) and classifies a built-in
corpus of realistic failures (every row of the classification table) plus
the cases of --cases FILE. It prints, per failure, the built-in verdict,
the plugin's verdict and the effects that would differ (backoffs,
persisted errors, fallback, re-login), then any faults with their kind.

  --cases FILE   more failures to classify (JSON: {"cases": [{"name", "source",
                 "status", "network", "streamRateLimit", "headers", "body",
                 "message", "expect": {"class", "decidedBy", "retryAfterMs"}}]})
  --junit FILE   also write the results as JUnit XML to FILE
  --json         print the report as JSON instead of the table

init writes a starter plugin to DIR (which must be empty or absent) that
builds and passes check: --lang go (plugins/sdk, GOOS=wasip1) or
assemblyscript (npm, asc).

Exit status: 0 ok, 1 the plugin was rejected, faulted on an input or missed
an expectation, 2 usage error.
`

// Main runs "acctpool plugin ...": args are the words after "plugin"
// ("check ...", "init ...", "help"). It returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "check":
		return mainCheck(args[1:], stdout, stderr)
	case "init":
		return mainInit(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "acctpool plugin: unknown command %q (want check or init)\n\n%s", args[0], usage)
	return ExitUsage
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return nil, err
		}
		args = fl.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func mainCheck(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("plugin check", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	casesFile := fl.String("cases", "", "")
	junitFile := fl.String("junit", "", "")
	asJSON := fl.Bool("json", false, "")
	pos, err := parseInterleaved(fl, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "acctpool plugin check: %v\nTry: acctpool plugin help\n", err)
		return ExitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "acctpool plugin check: want one MANIFEST (the plugin's JSON manifest, as --plugin takes it), got %d arguments\nTry: acctpool plugin help\n", len(pos))
		return ExitUsage
	}
	cases, err := BuiltinCorpus()
	if err != nil {
		fmt.Fprintf(stderr, "acctpool plugin check: %v\n", err)
		return ExitUsage
	}
	if *casesFile != "" {
		data, err := os.ReadFile(*casesFile)
		if err != nil {
			fmt.Fprintf(stderr, "acctpool plugin check: --cases: %v\n", err)
			return ExitUsage
		}
		own, err := ParseCases(data)
		if err != nil {
			fmt.Fprintf(stderr, "acctpool plugin check: --cases %s: %v\n", *casesFile, err)
			return ExitUsage
		}
		for _, c := range own {
			for _, b := range cases {
				if b.builtin && b.Name == c.Name {
					fmt.Fprintf(stderr, "acctpool plugin check: --cases %s: case name %q is a built-in case's; pick another\n", *casesFile, c.Name)
					return ExitUsage
				}
			}
		}
		cases = append(cases, own...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := Check(ctx, Options{ManifestPath: pos[0], Cases: cases, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "acctpool plugin check: %v\n", err)
		return ExitUsage
	}
	code := ExitOK
	if rep.Failed() {
		code = ExitFailed
	}
	if *junitFile != "" {
		if err := junit.WriteFile(*junitFile, func(w io.Writer) error {
			host, _ := os.Hostname()
			return WriteJUnit(w, rep, host)
		}); err != nil {
			fmt.Fprintf(stderr, "acctpool plugin check: --junit: %v\n", err)
			return ExitUsage
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "acctpool plugin check: %v\n", err)
			return ExitUsage
		}
		return code
	}
	if err := WriteTable(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "acctpool plugin check: %v\n", err)
		return ExitUsage
	}
	return code
}
