package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/conformance"
)

const pr86Case = "token-403-in-quota-pass-arms-refresh-backoff"

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestUsageErrors: a bad flag, a --run or --tags that selects nothing, and
// a bad --cases directory exit 2 with a message on stderr and run nothing.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--nope"}, "flag provided but not defined: -nope"},
		{"stray argument", []string{"token-403"}, `unexpected argument "token-403"`},
		{"--run matches nothing", []string{"--run", "no-such-case"}, fmt.Sprintf(`no case matches --run "no-such-case" (%d cases loaded; see them with --list)`, embeddedCount(t))},
		{"--run and --tags together match nothing", []string{"--run", "^files-", "--tags", "routing"}, `no case matches --run "^files-" and --tags "routing"`},
		{"bad regexp", []string{"--run", "("}, "--run: error parsing regexp"},
		{"unknown tag", []string{"--tags", "quotas"}, `--tags: no case has tag "quotas"; the tags are quota, `},
		{"missing cases dir", []string{"--cases", "/nonexistent/cases"}, "--cases: stat /nonexistent/cases"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.Contains(t, stderr, tc.want)
			assert.NotContains(t, stdout, "passed", "nothing ran")
		})
	}
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runCmd(t, "--help")
	assert.Equal(t, exitPassed, code)
	for _, flag := range []string{"--server", "--cases", "--run", "--tags", "--list", "--junit", "--json", "-v", "Exit status"} {
		assert.Contains(t, stdout, flag)
	}
}

func TestList(t *testing.T) {
	code, stdout, _ := runCmd(t, "--list", "--tags", "PR86")
	require.Equal(t, exitPassed, code)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	assert.Len(t, lines, 3)
	assert.Contains(t, stdout, pr86Case+"  [refresh,classification,PR86]  PR #86 gap:")

	code, stdout, _ = runCmd(t, "--list")
	require.Equal(t, exitPassed, code)
	assert.Len(t, strings.Split(strings.TrimSpace(stdout), "\n"), embeddedCount(t))
}

func embeddedCount(t *testing.T) int {
	t.Helper()
	cases, err := loadCases("")
	require.NoError(t, err)
	return len(cases)
}

// TestServerRequiredOutsideTheRepo: run from a directory that is no
// acctpool checkout, the command says --server is required (it has no
// server source to build) and exits 2.
func TestServerRequiredOutsideTheRepo(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/other\n\ngo 1.24\n"), 0o600))
	t.Chdir(dir)
	code, _, stderr := runCmd(t, "--run", "lifecycle")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--server is required here")
	assert.Contains(t, stderr, "is module example.com/other")
}

// TestPR86BuildFailsWithADiff runs the command against a server built with
// the PR #86 bug: the header names the suite, the case count, the server
// and its version; the failed case shows its step and a want/got diff;
// the closing line and the exit status say one failed; the JUnit file has
// the failure.
func TestPR86BuildFailsWithADiff(t *testing.T) {
	dir := t.TempDir()
	bin, err := conformance.BuildServer(context.Background(), dir, "acctpool_pr86bug")
	require.NoError(t, err)
	junit := filepath.Join(dir, "report.xml")

	code, stdout, stderr := runCmd(t, "--server", bin, "--tags", "PR86", "--junit", junit)
	assert.Equal(t, exitFailed, code, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.NotEmpty(t, lines)
	assert.Regexp(t, `^acctpool conformance suite `+regexp.QuoteMeta(conformance.SuiteVersion)+`: 3 cases against `+regexp.QuoteMeta(bin)+` \(acctpool \S.*\)$`, lines[0])
	assert.Contains(t, stdout, "PASS     quota-403-permission-error-background  usage 403 permission_error")
	assert.Contains(t, stdout, "FAIL     "+pr86Case+"  PR #86 gap")
	assert.Regexp(t, `(?m)^         at step \d+ \(check\)\n         state\.accounts\.fb-token-403\.lastRefreshError\n           - want \{.*"status":403\}\n           \+ got  \(missing\)$`, stdout)
	assert.Equal(t, "2 passed, 1 failed", lines[len(lines)-1])

	var doc struct {
		Suites []struct {
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junit)
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Len(t, doc.Suites, 1)
	failed := 0
	for _, c := range doc.Suites[0].Cases {
		if c.Failure == nil {
			continue
		}
		failed++
		assert.Equal(t, pr86Case, c.Name)
		assert.Equal(t, "conformance.refresh", c.Classname)
		assert.Contains(t, c.Failure.Message, "lastRefreshError: missing")
		assert.Contains(t, c.Failure.Text, "+ got  (missing)")
	}
	assert.Equal(t, 1, failed)

	// --json: the report on stdout (the header goes to stderr), the same
	// exit status.
	code, stdout, stderr = runCmd(t, "--server", bin, "--run", "^"+pr86Case+"$", "--json")
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, stderr, "acctpool conformance suite")
	var rep conformance.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	assert.Equal(t, 1, rep.Failed)
	assert.Equal(t, conformance.SuiteVersion, rep.Suite)
	assert.True(t, strings.HasPrefix(rep.ServerVersion, "acctpool "), rep.ServerVersion)
	require.Len(t, rep.Results, 1)
	assert.NotEmpty(t, rep.Results[0].Diff)

	// The same build passes the usage-403 half: exit 0.
	code, stdout, _ = runCmd(t, "--server", bin, "--run", "^quota-403-permission-error-background$")
	assert.Equal(t, exitPassed, code, stdout)
	assert.True(t, strings.HasSuffix(stdout, "1 passed, 0 failed\n"), stdout)
}
