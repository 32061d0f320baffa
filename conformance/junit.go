package conformance

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/acctpool/acctpool/conformance/junit"
)

// JUnitClassname is a case's JUnit classname: "conformance.<area>", the
// area being the case's first tag ("conformance.untagged" without tags).
func JUnitClassname(r Result) string {
	area := "untagged"
	if len(r.Tags) > 0 {
		area = r.Tags[0]
	}
	return "conformance." + area
}

// WriteJUnit writes rep as JUnit XML (package junit: the Ant JUnit
// schema): one testsuite "acctpool-conformance" with the suite version,
// server command and server version as properties; one testcase per case
// (name: the case id; classname: [JUnitClassname]); a failure with the
// step's one-line message ([Result.Message]) and the title and diff as its
// text; a pending case as skipped with its reason. The server's stderr
// tails of failed cases go to system-err. at is when the run started and
// host the machine's name ("localhost" if empty).
func WriteJUnit(w io.Writer, rep Report, at time.Time, host string) error {
	s := junit.Suite{
		Name: "acctpool-conformance", Package: "conformance",
		Started: at, Hostname: host, Elapsed: time.Duration(rep.Millis) * time.Millisecond,
		Properties: [][2]string{
			{"suite", rep.Suite},
			{"server", strings.Join(rep.Server, " ")},
			{"serverVersion", rep.ServerVersion},
		},
		SystemOut: rep.Summary() + "\n",
	}
	var errs strings.Builder
	for _, r := range rep.Results {
		c := junit.Case{Name: r.ID, Classname: JUnitClassname(r), Elapsed: time.Duration(r.Millis) * time.Millisecond}
		switch r.Status {
		case StatusFailed:
			text := r.DiffText()
			if r.Title != "" {
				text = r.Title + "\n" + text
			}
			c.Failure = &junit.Failure{Message: r.Message(), Type: "conformance", Text: text}
			if r.Stderr != "" {
				fmt.Fprintf(&errs, "== %s: server stderr (tail)\n%s\n", r.ID, r.Stderr)
			}
		case StatusPending:
			reason := "pending: " + r.Pending
			c.Skipped = &reason
		}
		s.Cases = append(s.Cases, c)
	}
	s.SystemErr = errs.String()
	return junit.Write(w, s)
}
