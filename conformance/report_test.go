package conformance

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sampleReport() Report {
	return Report{
		Suite: SuiteVersion, Server: []string{"/bin/server", "--plugin", "x.json"}, ServerVersion: "acctpool v1.2.3",
		Passed: 1, Failed: 2, Pending: 1, Millis: 1234,
		Results: []Result{
			{ID: "quota-ok", Title: "a passing case", Tags: []string{"quota"}, Status: StatusPassed, Millis: 12},
			{ID: "token-403", Title: "PR #86 gap", Tags: []string{"refresh", "PR86"}, Status: StatusFailed, Millis: 1500,
				Step: "step 2 (check)",
				Diff: []Mismatch{{Path: "state.accounts.fb.lastRefreshError", Want: `{"status":403}`, Missing: true}},
				Failures: []string{
					`check: state.accounts.fb.lastRefreshError: missing, want {"status":403}`,
					"token: unscripted request POST /v1/oauth/token",
				},
				Stderr: "level=WARN msg=\"boom\" \x1b[31mred\x1b[0m ]]> end"},
			{ID: "no-server", Status: StatusFailed, Step: "setup", Failures: []string{"start server: exec: no such file"}},
			{ID: "later", Tags: []string{"routing"}, Status: StatusPending, Pending: "needs parallel steps", Millis: 3},
		},
	}
}

func TestResultLineAndDetail(t *testing.T) {
	rep := sampleReport()
	tests := []struct {
		name       string
		r          Result
		line       string
		detail     []string // substrings, in order
		notVerbose []string // absent without -v
	}{
		{"pass", rep.Results[0], "PASS     quota-ok  a passing case  (12 ms)", nil, nil},
		{"fail with a diff", rep.Results[1], "FAIL     token-403  PR #86 gap  (1.50 s)",
			[]string{"at step 2 (check)\n", "state.accounts.fb.lastRefreshError\n", `- want {"status":403}`, "+ got  (missing)", "unscripted request"},
			[]string{"server stderr"}},
		{"fail without a diff", rep.Results[2], "FAIL     no-server  (0 ms)",
			[]string{"at setup\n", "start server: exec: no such file"}, nil},
		{"pending", rep.Results[3], "PENDING  later  (3 ms)", []string{"pending: needs parallel steps"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.line, tc.r.Line())
			d := tc.r.Detail(false)
			if tc.detail == nil {
				assert.Empty(t, d)
			}
			at := 0
			for _, want := range tc.detail {
				i := strings.Index(d[at:], want)
				if assert.GreaterOrEqual(t, i, 0, "%q not in order in\n%s", want, d) {
					at += i + len(want)
				}
			}
			assert.NotContains(t, d, `check: state.accounts`, "a mismatch shown as a diff is not repeated as a line")
			for _, s := range tc.notVerbose {
				assert.NotContains(t, d, s)
				assert.Contains(t, tc.r.Detail(true), s)
			}
		})
	}
	assert.Equal(t, `step 2 (check): state.accounts.fb.lastRefreshError: missing, want {"status":403}`, rep.Results[1].Message())
	assert.Equal(t, "1 passed, 2 failed, 1 pending", rep.Summary())
}

func TestDetailBoundsTheDiff(t *testing.T) {
	r := Result{ID: "x", Status: StatusFailed, Step: "expect"}
	for i := range 10 {
		r.Diff = append(r.Diff, Mismatch{Path: "p" + strconv.Itoa(i), Want: "1", Got: "2"})
	}
	assert.Contains(t, r.Detail(false), "… 4 more (-v for all)")
	assert.NotContains(t, r.Detail(false), "p9\n")
	assert.Contains(t, r.Detail(true), "p9\n")
}

func TestHeader(t *testing.T) {
	assert.Equal(t, "acctpool conformance suite "+SuiteVersion+": 59 cases against /bin/s --x (acctpool v1)",
		Header(59, []string{"/bin/s", "--x"}, "acctpool v1"))
	assert.Contains(t, Header(1, []string{"s"}, ""), "(--version printed nothing)")
}

func TestSelect(t *testing.T) {
	cases := []*Case{
		{ID: "quota-a", Tags: []string{"quota"}},
		{ID: "token-b", Tags: []string{"refresh", "PR86"}},
		{ID: "messages-c", Tags: []string{"routing", "classification"}},
	}
	ids := func(cs []*Case) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	tests := []struct {
		name   string
		filter string
		tags   []string
		want   []string
	}{
		{"everything", "", nil, []string{"quota-a", "token-b", "messages-c"}},
		{"by id", "^token-", nil, []string{"token-b"}},
		{"by tag, any of", "", []string{"pr86", "routing"}, []string{"token-b", "messages-c"}},
		{"id and tag both apply", "quota", []string{"routing"}, []string{}},
		{"no match", "nope", nil, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var re *regexp.Regexp
			if tc.filter != "" {
				re = regexp.MustCompile(tc.filter)
			}
			assert.Equal(t, tc.want, ids(Select(cases, re, tc.tags)))
		})
	}
	assert.Equal(t, []string{"quota", "refresh", "PR86", "routing", "classification"}, TagsOf(cases))
}

// TestEmbeddedCasesAreTagged: every shipped case has a title and tags from
// Areas, the first being its JUnit classname.
func TestEmbeddedCasesAreTagged(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range embeddedCases(t) {
		assert.NotEmpty(t, c.Title, c.ID)
		if assert.NotEmpty(t, c.Tags, "%s has no tags", c.ID) {
			for _, tag := range c.Tags {
				assert.Contains(t, Areas, tag, "%s: tag %q is not one of the areas", c.ID, tag)
				seen[tag] = true
			}
		}
	}
	for _, a := range Areas {
		assert.True(t, seen[a], "no case is tagged %s", a)
	}
	assert.Contains(t, Select(embeddedCases(t), regexp.MustCompile("^"+pr86Case+"$"), []string{"PR86"}), func() *Case {
		for _, c := range embeddedCases(t) {
			if c.ID == pr86Case {
				return c
			}
		}
		return nil
	}(), "the PR #86 case carries the PR86 tag")
}

func TestParseCaseRejectsBadTags(t *testing.T) {
	_, err := ParseCase([]byte(`{"id":"x","tags":["two words"],"evidence":{"design":["d"]},"steps":[]}`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `tag "two words"`)
}

// The JUnit document as the Ant JUnit schema (JUnit.xsd) defines it, with
// every attribute and element the schema requires captured so the test can
// check it is there.
type xsdSuites struct {
	XMLName xml.Name   `xml:"testsuites"`
	Attrs   []xml.Attr `xml:",any,attr"`
	Suites  []xsdSuite `xml:"testsuite"`
}

type xsdSuite struct {
	Attrs      []xml.Attr `xml:",any,attr"`
	Properties *struct {
		Property []struct {
			Name  *string `xml:"name,attr"`
			Value *string `xml:"value,attr"`
		} `xml:"property"`
	} `xml:"properties"`
	Cases     []xsdCase `xml:"testcase"`
	SystemOut *string   `xml:"system-out"`
	SystemErr *string   `xml:"system-err"`
}

type xsdCase struct {
	Attrs    []xml.Attr `xml:",any,attr"`
	Failures []struct {
		Message string     `xml:"message,attr"`
		Attrs   []xml.Attr `xml:",any,attr"`
		Text    string     `xml:",chardata"`
	} `xml:"failure"`
	Skipped []struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Errors []struct{} `xml:"error"`
	Other  []xml.Name `xml:",any"`
}

func attrs(list []xml.Attr) map[string]string {
	m := map[string]string{}
	for _, a := range list {
		m[a.Name.Local] = a.Value
	}
	return m
}

// TestJUnitMatchesTheAntSchema checks WriteJUnit's output against the
// rules of the Ant JUnit schema: <testsuites> without attributes holding
// <testsuite> elements with name, package, id, timestamp (no zone),
// hostname, tests, failures, errors and time; then properties, testcases,
// system-out and system-err in that order; each testcase with name,
// classname and time and at most one of skipped, error or failure (with a
// type). With ACCTPOOL_JUNIT_XSD pointing at that schema and xmllint on
// PATH it also validates with xmllint.
func TestJUnitMatchesTheAntSchema(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	require.NoError(t, WriteJUnit(&buf, sampleReport(), at, ""))
	doc := buf.Bytes()
	require.True(t, bytes.HasPrefix(doc, []byte(xml.Header)))

	var s xsdSuites
	require.NoError(t, xml.Unmarshal(doc, &s), "%s", doc)
	assert.Empty(t, s.Attrs, "the schema allows no attributes on testsuites")
	require.Len(t, s.Suites, 1)
	suite := s.Suites[0]
	a := attrs(suite.Attrs)
	for _, k := range []string{"name", "package", "id", "timestamp", "hostname", "tests", "failures", "errors", "time"} {
		assert.NotEmpty(t, a[k], "testsuite@%s is required", k)
	}
	assert.Equal(t, "2026-12-01T09:30:00", a["timestamp"], "ISO 8601 without a zone")
	assert.Equal(t, "localhost", a["hostname"])
	assert.Equal(t, map[string]string{"tests": "4", "failures": "2", "errors": "0", "skipped": "1", "time": "1.234", "id": "0"},
		map[string]string{"tests": a["tests"], "failures": a["failures"], "errors": a["errors"], "skipped": a["skipped"], "time": a["time"], "id": a["id"]})
	require.NotNil(t, suite.Properties, "properties is required")
	props := map[string]string{}
	for _, p := range suite.Properties.Property {
		require.NotNil(t, p.Name)
		require.NotNil(t, p.Value)
		props[*p.Name] = *p.Value
	}
	assert.Equal(t, map[string]string{"suite": SuiteVersion, "server": "/bin/server --plugin x.json", "serverVersion": "acctpool v1.2.3"}, props)
	require.NotNil(t, suite.SystemOut, "system-out is required")
	require.NotNil(t, suite.SystemErr, "system-err is required")
	assert.Equal(t, "1 passed, 2 failed, 1 pending\n", *suite.SystemOut)
	assert.Contains(t, *suite.SystemErr, "token-403: server stderr")
	assert.Contains(t, *suite.SystemErr, "]]> end", "CDATA terminators in the text survive")
	assert.NotContains(t, *suite.SystemErr, "\x1b", "control characters are replaced")

	// Element order: properties, testcase*, system-out, system-err.
	order := regexp.MustCompile(`<(properties|testcase|system-out|system-err)[ >]`).FindAllSubmatch(doc, -1)
	var names []string
	for _, m := range order {
		if n := string(m[1]); len(names) == 0 || names[len(names)-1] != n {
			names = append(names, n)
		}
	}
	assert.Equal(t, []string{"properties", "testcase", "system-out", "system-err"}, names)

	require.Len(t, suite.Cases, 4)
	byName := map[string]xsdCase{}
	for _, c := range suite.Cases {
		ca := attrs(c.Attrs)
		for _, k := range []string{"name", "classname", "time"} {
			assert.NotEmpty(t, ca[k], "testcase@%s is required", k)
		}
		_, err := strconv.ParseFloat(ca["time"], 64)
		assert.NoError(t, err, "testcase@time is a decimal")
		assert.LessOrEqual(t, len(c.Failures)+len(c.Skipped)+len(c.Errors), 1, "at most one of skipped, error, failure")
		assert.Empty(t, c.Other, "no other elements inside testcase")
		byName[ca["name"]] = c
	}
	assert.Equal(t, "conformance.quota", attrs(byName["quota-ok"].Attrs)["classname"])
	assert.Equal(t, "conformance.refresh", attrs(byName["token-403"].Attrs)["classname"], "the first tag is the area")
	assert.Equal(t, "conformance.untagged", attrs(byName["no-server"].Attrs)["classname"])
	assert.Empty(t, byName["quota-ok"].Failures)

	f := byName["token-403"].Failures
	require.Len(t, f, 1)
	assert.Equal(t, "conformance", attrs(f[0].Attrs)["type"], "failure@type is required")
	assert.Equal(t, `step 2 (check): state.accounts.fb.lastRefreshError: missing, want {"status":403}`, f[0].Message)
	assert.Contains(t, f[0].Text, "- want {\"status\":403}\n  + got  (missing)")
	require.Len(t, byName["later"].Skipped, 1)
	assert.Equal(t, "pending: needs parallel steps", byName["later"].Skipped[0].Message)

	xsd := os.Getenv("ACCTPOOL_JUNIT_XSD")
	lint, err := exec.LookPath("xmllint")
	if xsd == "" || err != nil {
		t.Skip("xmllint validation skipped: set ACCTPOOL_JUNIT_XSD to the Ant JUnit.xsd and install xmllint (the structural checks above ran)")
	}
	file := filepath.Join(t.TempDir(), "junit.xml")
	require.NoError(t, os.WriteFile(file, doc, 0o600))
	out, err := exec.Command(lint, "--noout", "--schema", xsd, file).CombinedOutput()
	assert.NoError(t, err, "xmllint: %s", out)
	assert.True(t, slices.ContainsFunc(strings.Split(string(out), "\n"), func(l string) bool { return strings.HasSuffix(l, "validates") }), "%s", out)
}
