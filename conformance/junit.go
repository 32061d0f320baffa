package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// JUnit XML, in the shape of the Apache Ant JUnit schema (the common
// "JUnit.xsd" that Jenkins, GitLab and GitHub test reporters read): one
// <testsuites> holding one <testsuite> with <properties>, a <testcase>
// per case and the required <system-out> and <system-err>.

type junitSuites struct {
	XMLName xml.Name   `xml:"testsuites"`
	Suites  []junitRun `xml:"testsuite"`
}

type junitRun struct {
	Name       string          `xml:"name,attr"`
	Package    string          `xml:"package,attr"`
	ID         int             `xml:"id,attr"`
	Timestamp  string          `xml:"timestamp,attr"`
	Hostname   string          `xml:"hostname,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  cdata           `xml:"system-out"`
	SystemErr  cdata           `xml:"system-err"`
}

// cdata is element text written as CDATA, so multi-line text stays
// readable in the file.
type cdata struct {
	Text string `xml:",cdata"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// JUnitClassname is a case's JUnit classname: "conformance.<area>", the
// area being the case's first tag ("conformance.untagged" without tags).
func JUnitClassname(r Result) string {
	area := "untagged"
	if len(r.Tags) > 0 {
		area = r.Tags[0]
	}
	return "conformance." + area
}

// WriteJUnit writes rep as JUnit XML: one testcase per case (name: the
// case id; classname: [JUnitClassname]; time in seconds), a failure with
// the step's one-line message and the diff as its text, a pending case as
// skipped with its reason. The server's stderr tails of failed cases go
// to system-err. at is when the run started (local time, no zone, as the
// schema wants) and host the machine's name ("localhost" if empty).
func WriteJUnit(w io.Writer, rep Report, at time.Time, host string) error {
	if host == "" {
		host = "localhost"
	}
	run := junitRun{
		Name:      "acctpool-conformance",
		Package:   "conformance",
		Timestamp: at.Format("2006-01-02T15:04:05"),
		Hostname:  host,
		Tests:     len(rep.Results),
		Failures:  rep.Failed,
		Skipped:   rep.Pending,
		Time:      seconds(rep.Millis),
		Properties: []junitProperty{
			{Name: "suite", Value: rep.Suite},
			{Name: "server", Value: strings.Join(rep.Server, " ")},
			{Name: "serverVersion", Value: rep.ServerVersion},
		},
		Cases: []junitCase{},
	}
	var errs strings.Builder
	for _, r := range rep.Results {
		c := junitCase{Name: r.ID, Classname: JUnitClassname(r), Time: seconds(r.Millis)}
		switch r.Status {
		case StatusFailed:
			text := r.DiffText()
			if r.Title != "" {
				text = r.Title + "\n" + text
			}
			c.Failure = &junitFailure{Message: xmlSafe(r.Message()), Type: "conformance", Text: xmlSafe(text)}
			if r.Stderr != "" {
				fmt.Fprintf(&errs, "== %s: server stderr (tail)\n%s\n", r.ID, r.Stderr)
			}
		case StatusPending:
			c.Skipped = &junitSkipped{Message: xmlSafe("pending: " + r.Pending)}
		}
		run.Cases = append(run.Cases, c)
	}
	run.SystemOut = cdata{rep.Summary() + "\n"}
	run.SystemErr = cdata{xmlSafe(errs.String())}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitRun{run}}); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// xmlSafe replaces the characters XML 1.0 cannot carry (most control
// characters, such as a terminal escape in server stderr) with U+FFFD.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return r
		case r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0xD800 && r <= 0xDFFF:
			return '\uFFFD'
		}
		return r
	}, s)
}

func seconds(ms int64) string { return fmt.Sprintf("%.3f", float64(ms)/1000) }
