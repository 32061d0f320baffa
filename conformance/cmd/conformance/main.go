package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"regexp"
	"strings"

	"github.com/acctpool/acctpool/conformance"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fl.SetOutput(stderr)
	server := fl.String("server", "", "server command (default: build ./cmd/stdio-server)")
	casesDir := fl.String("cases", "", "directory of case files (default: the embedded cases)")
	filter := fl.String("run", "", "run only cases whose id matches this regular expression")
	asJSON := fl.Bool("json", false, "print the report as JSON")
	verbose := fl.Bool("v", false, "print every failure and the server's stderr tail for failed cases")
	if err := fl.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var src fs.FS
	if *casesDir != "" {
		src = os.DirFS(*casesDir)
	} else {
		sub, err := fs.Sub(conformance.Cases, "cases")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		src = sub
	}
	cases, err := conformance.LoadCases(src)
	if err != nil {
		fmt.Fprintln(stderr, "load cases:", err)
		return 2
	}
	opts := conformance.Options{Cases: cases}
	if *filter != "" {
		re, err := regexp.Compile(*filter)
		if err != nil {
			fmt.Fprintln(stderr, "--run:", err)
			return 2
		}
		opts.Filter = re
	}
	if *server != "" {
		opts.Server = strings.Fields(*server)
	} else {
		dir, err := os.MkdirTemp("", "acctpool-conformance-bin-")
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		defer os.RemoveAll(dir)
		bin, err := conformance.BuildServer(ctx, dir)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		opts.Server = []string{bin}
	}
	if !*asJSON {
		opts.Progress = stdout
	}
	rep := conformance.Run(ctx, opts)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	} else {
		if *verbose {
			for _, r := range rep.Results {
				if r.Status != conformance.StatusFailed {
					continue
				}
				fmt.Fprintf(stdout, "\n--- %s (%s)\n", r.ID, r.File)
				for _, f := range r.Failures {
					fmt.Fprintln(stdout, "    "+f)
				}
				if r.Stderr != "" {
					fmt.Fprintln(stdout, "    server stderr (tail):")
					for _, l := range strings.Split(r.Stderr, "\n") {
						fmt.Fprintln(stdout, "      "+l)
					}
				}
			}
		}
		fmt.Fprintln(stdout, rep.Summary())
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}
