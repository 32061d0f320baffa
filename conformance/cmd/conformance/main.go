package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"time"

	"github.com/acctpool/acctpool/conformance"
	"github.com/acctpool/acctpool/conformance/junit"
)

// Exit statuses.
const (
	exitPassed = 0
	exitFailed = 1
	exitUsage  = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: conformance [flags]

Runs acctpool's conformance suite: each case starts the server under test
with its files and a scripted fake Anthropic, drives it over JSON-RPC, and
checks the results, the fake's requests and the files.

Flags:
  --server CMD    server command, split on spaces (default: build ./cmd/stdio-server;
                  only inside an acctpool checkout, elsewhere --server is required)
  --cases DIR     directory of case files (default: the cases embedded in the suite)
  --run REGEX     only cases whose id matches
  --tags LIST     only cases with one of these comma-separated tags
                  (files, refresh, quota, routing, classification, lifecycle, PR86)
  --list          print the selected cases (id, tags, title) and exit
  --junit FILE    also write the results as JUnit XML to FILE
  --json          print the report as JSON instead of lines
  -v              every failure line and the server's stderr tail for failed cases

Exit status: 0 every selected case passed (pending cases do not fail),
1 a case failed, 2 a usage error or a selection that matched no case.
`

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	server := fl.String("server", "", "")
	casesDir := fl.String("cases", "", "")
	filter := fl.String("run", "", "")
	tagList := fl.String("tags", "", "")
	list := fl.Bool("list", false, "")
	junit := fl.String("junit", "", "")
	asJSON := fl.Bool("json", false, "")
	verbose := fl.Bool("v", false, "")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitPassed
		}
		fmt.Fprintf(stderr, "conformance: %v\nTry: conformance --help\n", err)
		return exitUsage
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(stderr, "conformance: unexpected argument %q (flags only)\nTry: conformance --help\n", fl.Arg(0))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cases, err := loadCases(*casesDir)
	if err != nil {
		fmt.Fprintf(stderr, "conformance: %v\n", err)
		return exitUsage
	}
	var re *regexp.Regexp
	if *filter != "" {
		if re, err = regexp.Compile(*filter); err != nil {
			fmt.Fprintf(stderr, "conformance: --run: %v\n", err)
			return exitUsage
		}
	}
	tags, err := parseTags(*tagList, cases)
	if err != nil {
		fmt.Fprintf(stderr, "conformance: --tags: %v\n", err)
		return exitUsage
	}
	selected := conformance.Select(cases, re, tags)
	if len(selected) == 0 {
		fmt.Fprintf(stderr, "conformance: no case matches%s (%d cases loaded; see them with --list)\n", describe(*filter, *tagList), len(cases))
		return exitUsage
	}
	if *list {
		for _, c := range selected {
			fmt.Fprintf(stdout, "%s  [%s]  %s\n", c.ID, strings.Join(c.Tags, ","), c.Title)
		}
		return exitPassed
	}

	opts := conformance.Options{Cases: selected, Verbose: *verbose}
	if *server != "" {
		opts.Server = strings.Fields(*server)
	} else {
		dir, err := os.MkdirTemp("", "acctpool-conformance-bin-")
		if err != nil {
			fmt.Fprintf(stderr, "conformance: %v\n", err)
			return exitUsage
		}
		defer os.RemoveAll(dir)
		bin, err := conformance.BuildServer(ctx, dir)
		if errors.Is(err, conformance.ErrNotInModule) {
			fmt.Fprintf(stderr, "conformance: --server is required here (%v).\n"+
				"Without --server the suite builds ./cmd/stdio-server of the acctpool checkout it runs in; anywhere else\n"+
				"pass the server under test, for example: --server \"/path/to/server --plugin my.json\"\n", err)
			return exitUsage
		}
		if err != nil {
			fmt.Fprintf(stderr, "conformance: %v\n", err)
			return exitUsage
		}
		opts.Server = []string{bin}
	}
	version, err := conformance.ServerVersion(ctx, opts.Server)
	if err != nil {
		fmt.Fprintf(stderr, "conformance: warning: %v\n", err)
	}
	opts.ServerVersion = version

	header := conformance.Header(len(selected), opts.Server, version)
	if *asJSON {
		fmt.Fprintln(stderr, header)
	} else {
		fmt.Fprintln(stdout, header)
		opts.Progress = stdout
	}
	started := time.Now()
	rep := conformance.Run(ctx, opts)
	code := exitPassed
	if rep.Failed > 0 {
		code = exitFailed
	}
	if *junit != "" {
		if err := writeJUnit(*junit, rep, started); err != nil {
			fmt.Fprintf(stderr, "conformance: --junit: %v\n", err)
			code = exitUsage
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "conformance: %v\n", err)
			return exitUsage
		}
		return code
	}
	fmt.Fprintln(stdout, rep.Summary())
	return code
}

func loadCases(dir string) ([]*conformance.Case, error) {
	var src fs.FS
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("--cases: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("--cases: %s is not a directory of *.json case files", dir)
		}
		src = os.DirFS(dir)
	} else {
		sub, err := fs.Sub(conformance.Cases, "cases")
		if err != nil {
			return nil, err
		}
		src = sub
	}
	cases, err := conformance.LoadCases(src)
	if err != nil {
		return nil, fmt.Errorf("load cases: %w", err)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("--cases: no *.json case files in %s", dir)
	}
	return cases, nil
}

// parseTags splits the --tags list and rejects a tag no loaded case has,
// naming the ones that exist.
func parseTags(list string, cases []*conformance.Case) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	known := conformance.TagsOf(cases)
	var out []string
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		found := false
		for _, k := range known {
			if strings.EqualFold(k, t) {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("no case has tag %q; the tags are %s", t, strings.Join(known, ", "))
		}
		out = append(out, t)
	}
	return out, nil
}

func describe(filter, tags string) string {
	var parts []string
	if filter != "" {
		parts = append(parts, fmt.Sprintf("--run %q", filter))
	}
	if tags != "" {
		parts = append(parts, fmt.Sprintf("--tags %q", tags))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " and ")
}

// writeJUnit writes the report atomically: a temp file in the target's
// directory, then a rename, so a reader never sees half a report.
func writeJUnit(path string, rep conformance.Report, started time.Time) error {
	host, _ := os.Hostname()
	return junit.WriteFile(path, func(w io.Writer) error { return conformance.WriteJUnit(w, rep, started, host) })
}
