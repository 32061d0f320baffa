package plugincheck

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/acctpool/acctpool/conformance/junit"
)

// WriteTable prints the report for people: what was loaded, one row per
// case (failure, built-in verdict, plugin verdict, effects that differ),
// the faults with their kind, unmet expectations, and a closing count.
func WriteTable(w io.Writer, r Report) error {
	if r.LoadError != "" {
		_, err := fmt.Fprintf(w, "plugin %s: rejected, the server would not load it:\n  %s\n", r.Manifest, r.LoadError)
		return err
	}
	fmt.Fprintf(w, "plugin %s %s (%s): loaded in %.1f ms, as the server loads it (sha256, ABI errclass v1, limits)\n\n", r.ID, r.Version, r.Wasm, r.LoadMillis)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FAILURE\tBUILT-IN\tPLUGIN\tEFFECTS THAT DIFFER")
	for _, row := range r.Rows {
		effects := strings.Join(row.EffectsThatDiffer, "; ")
		if effects == "" {
			effects = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.label(), verdictCell(row.Builtin, nil), row.pluginCell(), effects)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Faults > 0 {
		fmt.Fprintf(w, "\nfaults (the server would use the built-in verdict):\n")
		for _, row := range r.Rows {
			if row.Fault != nil {
				fmt.Fprintf(w, "  %-40s %s: %s\n", row.label(), row.Fault.Kind, row.Fault.Message)
			}
		}
	}
	if r.ExpectFailed > 0 {
		fmt.Fprintf(w, "\nexpectations not met:\n")
		for _, row := range r.Rows {
			for _, e := range row.ExpectFailures {
				fmt.Fprintf(w, "  %-40s %s\n", row.label(), e)
			}
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\n", r.Summary())
	return err
}

// Summary is the closing line: how many cases, changed, no opinion,
// faults (and unmet expectations).
func (r Report) Summary() string {
	if r.LoadError != "" {
		return "plugin rejected: " + r.LoadError
	}
	s := fmt.Sprintf("%d cases: %d changed by the plugin, %d no opinion, %d faults", len(r.Rows), r.Changed, r.NoOpinion, r.Faults)
	if r.ExpectFailed > 0 {
		s += fmt.Sprintf(", %d expectations not met", r.ExpectFailed)
	}
	return s
}

func (row Row) label() string {
	if row.Origin == "cases" {
		return row.Name + " (--cases)"
	}
	return row.Name
}

func (row Row) pluginCell() string {
	switch {
	case row.Fault != nil:
		return "FAULT " + string(row.Fault.Kind)
	case row.Plugin == nil:
		return "no opinion"
	}
	return verdictCell(*row.Plugin, &row.Builtin)
}

// verdictCell is the class with its wait: always when there is one
// (built-in column), only when it differs from ref's (plugin column).
func verdictCell(v Verdict, ref *Verdict) string {
	s := string(v.Class)
	show := v.RetryAfterMs != 0
	if ref != nil {
		show = v.RetryAfterMs != ref.RetryAfterMs
	}
	if show {
		s += ", retry " + duration(time.Duration(v.RetryAfterMs)*time.Millisecond)
	}
	return s
}

// WriteJUnit writes the report as JUnit XML: one testcase per case,
// classname "plugincheck.<source>", failing on a fault (type
// "fault:<kind>") or an unmet expectation (type "expect"); a rejected
// plugin is one failing testcase "load".
func WriteJUnit(w io.Writer, r Report, host string) error {
	s := junit.Suite{
		Name: "acctpool-plugin-check", Package: "plugincheck",
		Started: r.started, Hostname: host, Elapsed: time.Duration(r.Millis) * time.Millisecond,
		Properties: [][2]string{{"manifest", r.Manifest}, {"plugin", r.ID}, {"version", r.Version}, {"wasm", r.Wasm}},
		SystemOut:  r.Summary() + "\n",
	}
	if r.LoadError != "" {
		s.Cases = append(s.Cases, junit.Case{Name: "load", Classname: "plugincheck.load",
			Failure: &junit.Failure{Message: "plugin rejected: " + r.LoadError, Type: "load", Text: r.LoadError}})
		return junit.Write(w, s)
	}
	for _, row := range r.Rows {
		c := junit.Case{Name: row.label(), Classname: "plugincheck." + string(row.Source),
			Elapsed: time.Duration(row.Millis * float64(time.Millisecond))}
		detail := fmt.Sprintf("built-in: %s (%s)\nplugin: %s\neffects that differ: %s\n",
			row.Builtin.Class, row.Builtin.Reason, row.pluginCell(), strings.Join(row.EffectsThatDiffer, "; "))
		switch {
		case row.Fault != nil:
			c.Failure = &junit.Failure{Message: fmt.Sprintf("%s: %s", row.Fault.Kind, row.Fault.Message),
				Type: "fault:" + string(row.Fault.Kind), Text: detail}
		case len(row.ExpectFailures) > 0:
			c.Failure = &junit.Failure{Message: strings.Join(row.ExpectFailures, "; "), Type: "expect", Text: detail}
		}
		s.Cases = append(s.Cases, c)
	}
	return junit.Write(w, s)
}
