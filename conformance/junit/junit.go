// Package junit writes test results as JUnit XML in the shape of the
// Apache Ant JUnit schema (the common "JUnit.xsd" that Jenkins, GitLab and
// GitHub test reporters read): one <testsuites> element without
// attributes, holding <testsuite> elements that carry name, package, id,
// timestamp (no zone), hostname, tests, failures, errors, skipped and
// time, then <properties>, the <testcase> elements, <system-out> and
// <system-err>, in that order. Each testcase has name, classname and time
// and at most one <failure> (with a type) or <skipped>.
//
// The conformance command and `acctpool plugin check` both write their
// --junit reports with it. It imports only the standard library.
package junit

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Suite is one <testsuite>.
type Suite struct {
	// Name and Package name the suite; Package is required inside
	// <testsuites> by the schema.
	Name    string
	Package string
	// Started is when the run began; Hostname the machine ("localhost"
	// when empty).
	Started  time.Time
	Hostname string
	// Elapsed is the whole suite's wall time.
	Elapsed time.Duration
	// Properties are name/value pairs about the run, in order.
	Properties [][2]string
	Cases      []Case
	// SystemOut and SystemErr are free text (for example a summary line
	// and the stderr of failed runs).
	SystemOut, SystemErr string
}

// Case is one <testcase>. Failure and Skipped are mutually exclusive;
// neither means it passed.
type Case struct {
	Name, Classname string
	Elapsed         time.Duration
	Failure         *Failure
	// Skipped, when non-nil, is the reason the case was skipped.
	Skipped *string
}

// Failure is a failed testcase: a one-line Message, a Type (the kind of
// failure) and multi-line Text.
type Failure struct {
	Message, Type, Text string
}

type xmlSuites struct {
	XMLName xml.Name   `xml:"testsuites"`
	Suites  []xmlSuite `xml:"testsuite"`
}

type xmlSuite struct {
	Name       string        `xml:"name,attr"`
	Package    string        `xml:"package,attr"`
	ID         int           `xml:"id,attr"`
	Timestamp  string        `xml:"timestamp,attr"`
	Hostname   string        `xml:"hostname,attr"`
	Tests      int           `xml:"tests,attr"`
	Failures   int           `xml:"failures,attr"`
	Errors     int           `xml:"errors,attr"`
	Skipped    int           `xml:"skipped,attr"`
	Time       string        `xml:"time,attr"`
	Properties []xmlProperty `xml:"properties>property"`
	Cases      []xmlCase     `xml:"testcase"`
	SystemOut  cdata         `xml:"system-out"`
	SystemErr  cdata         `xml:"system-err"`
}

// cdata is element text written as CDATA, so multi-line text stays
// readable in the file.
type cdata struct {
	Text string `xml:",cdata"`
}

type xmlProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type xmlCase struct {
	Name      string      `xml:"name,attr"`
	Classname string      `xml:"classname,attr"`
	Time      string      `xml:"time,attr"`
	Failure   *xmlFailure `xml:"failure,omitempty"`
	Skipped   *xmlSkipped `xml:"skipped,omitempty"`
}

type xmlFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",cdata"`
}

type xmlSkipped struct {
	Message string `xml:"message,attr"`
}

// Write writes the suites as one JUnit XML document. Counts are derived
// from the cases; text is cleaned of characters XML cannot carry.
func Write(w io.Writer, suites ...Suite) error {
	doc := xmlSuites{Suites: []xmlSuite{}}
	for i, s := range suites {
		host := s.Hostname
		if host == "" {
			host = "localhost"
		}
		xs := xmlSuite{
			Name: Clean(s.Name), Package: Clean(s.Package), ID: i,
			Timestamp: s.Started.Format("2006-01-02T15:04:05"), Hostname: Clean(host),
			Tests: len(s.Cases), Time: seconds(s.Elapsed),
			Properties: []xmlProperty{},
			Cases:      []xmlCase{},
			SystemOut:  cdata{Clean(s.SystemOut)}, SystemErr: cdata{Clean(s.SystemErr)},
		}
		for _, p := range s.Properties {
			xs.Properties = append(xs.Properties, xmlProperty{Name: Clean(p[0]), Value: Clean(p[1])})
		}
		for _, c := range s.Cases {
			xc := xmlCase{Name: Clean(c.Name), Classname: Clean(c.Classname), Time: seconds(c.Elapsed)}
			switch {
			case c.Failure != nil:
				xs.Failures++
				xc.Failure = &xmlFailure{Message: Clean(c.Failure.Message), Type: Clean(c.Failure.Type), Text: Clean(c.Failure.Text)}
			case c.Skipped != nil:
				xs.Skipped++
				xc.Skipped = &xmlSkipped{Message: Clean(*c.Skipped)}
			}
			xs.Cases = append(xs.Cases, xc)
		}
		doc.Suites = append(doc.Suites, xs)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// Clean replaces the characters XML 1.0 cannot carry (most control
// characters, such as a terminal escape in captured stderr) with U+FFFD.
func Clean(s string) string {
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

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteFile writes a report to path whole or not at all: write fills a
// temporary file beside path, which then replaces it, so a CI system never
// reads a half-written report.
func WriteFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
