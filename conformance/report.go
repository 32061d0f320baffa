package conformance

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SuiteVersion identifies this suite's cases and runner contract in
// reports. It changes when a case is added, removed or changes meaning,
// or when the contract a server must meet (README.md) changes.
const SuiteVersion = "1.2.0"

// Areas are the tags the embedded cases use, each case's first tag being
// its primary area (the JUnit classname).
var Areas = []string{"files", "refresh", "quota", "routing", "classification", "lifecycle", "PR86"}

// Report is the outcome of a run.
type Report struct {
	// Suite is [SuiteVersion].
	Suite string `json:"suite"`
	// Server is the command the cases ran against; ServerVersion what
	// its --version printed ("" when it printed nothing).
	Server        []string `json:"server"`
	ServerVersion string   `json:"serverVersion,omitempty"`
	Passed        int      `json:"passed"`
	Failed        int      `json:"failed"`
	Pending       int      `json:"pending"`
	// Millis is the whole run's wall time.
	Millis  int64    `json:"ms"`
	Results []Result `json:"results"`
}

// Header is the line printed before the cases run: the suite version, how
// many cases are selected, and which server they run against.
func Header(cases int, server []string, serverVersion string) string {
	v := serverVersion
	if v == "" {
		v = "--version printed nothing"
	}
	return fmt.Sprintf("acctpool conformance suite %s: %d cases against %s (%s)", SuiteVersion, cases, strings.Join(server, " "), v)
}

// Line is the one-line summary of a result, as the command prints it: the
// outcome, the case id, its title and how long it took.
func (r Result) Line() string {
	status := map[string]string{StatusPassed: "PASS", StatusPending: "PENDING", StatusFailed: "FAIL"}[r.Status]
	line := fmt.Sprintf("%-7s  %s", status, r.ID)
	if r.Title != "" {
		line += "  " + r.Title
	}
	return line + "  (" + formatMillis(r.Millis) + ")"
}

// maxDiff bounds the mismatches Detail shows without verbose.
const maxDiff = 6

// Detail is what the command prints under a result's line: nothing for a
// pass; for a pending case its reason; for a failure the step where it
// failed and each mismatch as a two-line diff (want, got), or the failure
// lines when no value comparison failed. Verbose shows every mismatch and
// failure line and the tail of the server's stderr.
func (r Result) Detail(verbose bool) string {
	var b strings.Builder
	switch r.Status {
	case StatusPassed:
		return ""
	case StatusPending:
		fmt.Fprintf(&b, "         pending: %s\n", r.Pending)
		if !verbose {
			return b.String()
		}
	}
	if r.Step != "" {
		fmt.Fprintf(&b, "         at %s\n", r.Step)
	}
	b.WriteString(r.diffText("         ", verbose))
	if verbose && r.Stderr != "" {
		b.WriteString("         server stderr (tail):\n")
		for _, l := range strings.Split(r.Stderr, "\n") {
			b.WriteString("           " + l + "\n")
		}
	}
	return b.String()
}

// DiffText is the failure as text, without indentation: each mismatch as
// "- want" / "+ got" lines under its path, then any failure line that is
// not one of the mismatches. JUnit failure bodies carry it.
func (r Result) DiffText() string { return r.diffText("", true) }

func (r Result) diffText(indent string, all bool) string {
	var b strings.Builder
	shown := map[string]bool{}
	for i, m := range r.Diff {
		if !all && i == maxDiff {
			fmt.Fprintf(&b, "%s… %d more (-v for all)\n", indent, len(r.Diff)-maxDiff)
			break
		}
		fmt.Fprintf(&b, "%s%s\n", indent, m.Path)
		if m.Note != "" {
			fmt.Fprintf(&b, "%s  %s\n", indent, m.Note)
		} else {
			fmt.Fprintf(&b, "%s  - want %s\n", indent, m.Want)
			got := m.Got
			if m.Missing {
				got = "(missing)"
			}
			fmt.Fprintf(&b, "%s  + got  %s\n", indent, got)
		}
		shown[m.String()] = true
	}
	// Failures that are no mismatch of this step (a server that would not
	// start, an unscripted request to the fake, a shutdown problem).
	n := 0
	for _, f := range r.Failures {
		if isMismatchLine(f, shown) {
			continue
		}
		if !all && n == 3 {
			fmt.Fprintf(&b, "%s… more (-v for all)\n", indent)
			break
		}
		fmt.Fprintf(&b, "%s%s\n", indent, f)
		n++
	}
	return b.String()
}

// isMismatchLine reports whether failure line f is one of the rendered
// mismatches (failure lines carry a "label: " prefix).
func isMismatchLine(f string, shown map[string]bool) bool {
	for s := range shown {
		if f == s || strings.HasSuffix(f, ": "+s) {
			return true
		}
	}
	return false
}

// Message is a result's failure in one line: the step and its first
// problem. JUnit failure messages carry it.
func (r Result) Message() string {
	first := ""
	switch {
	case len(r.Diff) > 0:
		first = r.Diff[0].String()
	case len(r.Failures) > 0:
		first = r.Failures[0]
	}
	if r.Step != "" && !strings.HasPrefix(first, r.Step) {
		return r.Step + ": " + first
	}
	return first
}

// Summary is the closing line: "N passed, N failed" (and pending, if any).
// CI scripts read it; its shape does not change.
func (r Report) Summary() string {
	s := fmt.Sprintf("%d passed, %d failed", r.Passed, r.Failed)
	if r.Pending > 0 {
		s += fmt.Sprintf(", %d pending", r.Pending)
	}
	return s
}

// Select returns the cases whose id matches filter (nil: every id) and
// that carry at least one of tags (none: any), in their order. Tags
// compare case-insensitively.
func Select(cases []*Case, filter *regexp.Regexp, tags []string) []*Case {
	var out []*Case
	for _, c := range cases {
		if filter != nil && !filter.MatchString(c.ID) {
			continue
		}
		if len(tags) > 0 && !slices.ContainsFunc(c.Tags, func(t string) bool {
			return slices.ContainsFunc(tags, func(w string) bool { return strings.EqualFold(t, w) })
		}) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// TagsOf lists the distinct tags of cases, in first-seen order.
func TagsOf(cases []*Case) []string {
	var out []string
	for _, c := range cases {
		for _, t := range c.Tags {
			if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, t) }) {
				out = append(out, t)
			}
		}
	}
	return out
}

// ServerVersion runs the server command with --version appended and
// returns the first line it printed on stdout (stderr if stdout was
// empty). A server that cannot answer within 10 s, or fails, gives an
// error; the suite still runs, since --version is informational.
func ServerVersion(ctx context.Context, server []string) (string, error) {
	if len(server) == 0 {
		return "", fmt.Errorf("no server command")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, server[0], append(append([]string(nil), server[1:]...), "--version")...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := firstNonEmptyLine(stdout.String())
	if out == "" {
		out = firstNonEmptyLine(stderr.String())
	}
	if err != nil {
		return out, fmt.Errorf("%s --version: %w", server[0], err)
	}
	return out, nil
}

func firstNonEmptyLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}

func formatMillis(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.2f s", float64(ms)/1000)
}
