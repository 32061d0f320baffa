package plugincheck

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
	"github.com/acctpool/acctpool/plugins"
)

// generous is a per-call deadline far above any real call, so that a busy
// machine cannot turn a healthy call into a timeout fault; the fixtures
// that test timeouts spin forever.
const generous = `{"memoryPages": 512, "callTimeoutMs": 1000}`

func fixture(t *testing.T, name, limits string) string {
	t.Helper()
	return writeManifest(t, t.TempDir(), name, filepath.Join(repoRoot, "plugins", "testdata", name+".wasm"), limits)
}

func goManifest(t *testing.T) string {
	t.Helper()
	require.NoError(t, goExampleErr)
	return writeManifest(t, t.TempDir(), "go-org403", goExample, generous)
}

func corpus(t *testing.T) []Case {
	t.Helper()
	cs, err := BuiltinCorpus()
	require.NoError(t, err)
	return cs
}

func rowsByName(r Report) map[string]Row {
	m := map[string]Row{}
	for _, row := range r.Rows {
		m[row.Name] = row
	}
	return m
}

// TestCorpusCoversTheClassificationTable: the built-in corpus has every
// failure the classification table names, and the built-in classifier
// gives each the class the table says.
func TestCorpusCoversTheClassificationTable(t *testing.T) {
	want := map[string]verdict.Class{
		"token 400 invalid_grant":            verdict.ClassInvalidGrant,
		"token 400 invalid_client":           verdict.ClassClientError,
		"token 401":                          verdict.ClassAuthExpired,
		"token 403":                          verdict.ClassOrgPolicy,
		"token 429 Retry-After 120":          verdict.ClassRateLimited,
		"token 429 no Retry-After":           verdict.ClassRateLimited,
		"token 500":                          verdict.ClassTransient,
		"token network error":                verdict.ClassTransient,
		"usage 403 permission_error":         verdict.ClassOrgPolicy,
		"usage 401":                          verdict.ClassAuthExpired,
		"usage 429 Retry-After 30":           verdict.ClassRateLimited,
		"usage 429 no Retry-After":           verdict.ClassRateLimited,
		"usage 500":                          verdict.ClassTransient,
		"usage 529 overloaded_error":         verdict.ClassTransient,
		"usage network error":                verdict.ClassTransient,
		"messages 401 authentication_error":  verdict.ClassAuthExpired,
		"messages 403 permission_error":      verdict.ClassOrgPolicy,
		"messages 429 Retry-After 17":        verdict.ClassRateLimited,
		"messages 429 no Retry-After":        verdict.ClassRateLimited,
		"messages 529 overloaded_error":      verdict.ClassTransient,
		"messages 500 api_error":             verdict.ClassTransient,
		"messages stream rate_limit_error":   verdict.ClassRateLimited,
		"messages network error":             verdict.ClassTransient,
		"messages 400 invalid_request_error": verdict.ClassClientError,
	}
	got := map[string]verdict.Failure{}
	for _, c := range corpus(t) {
		got[c.Name] = c.Failure(time.Now())
	}
	for name, class := range want {
		f, ok := got[name]
		if assert.True(t, ok, "corpus lacks %q", name) {
			assert.Equal(t, class, verdict.ClassifyBuiltin(f).Class, name)
		}
	}
	assert.Equal(t, 120*time.Second, verdict.ClassifyBuiltin(got["token 429 Retry-After 120"]).RetryAfter)
	assert.Zero(t, verdict.ClassifyBuiltin(got["usage 429 no Retry-After"]).RetryAfter)
	assert.Contains(t, string(got["usage 403 permission_error"].Body), `"type":"permission_error"`, "bodies are the real JSON shapes")
	assert.Equal(t, "org-acme-0001", got["usage 403 permission_error"].Header.Get("Anthropic-Organization-Id"))
	assert.True(t, got["messages stream rate_limit_error"].StreamRateLimit)
	assert.Equal(t, http.StatusOK, got["messages stream rate_limit_error"].Status)
	assert.True(t, got["token network error"].Network)
	assert.Contains(t, got["token network error"].Message, "no such host", "network failures carry the transport error as the server does")
}

// TestCheckGoExample: the Go example plugin, built from source, loads and
// changes exactly the 403s from org-acme-0001; the effects column says
// what that changes.
func TestCheckGoExample(t *testing.T) {
	rep, err := Check(context.Background(), Options{ManifestPath: goManifest(t), Cases: corpus(t), CacheDir: testCache})
	require.NoError(t, err)
	require.Empty(t, rep.LoadError)
	assert.False(t, rep.Failed())
	assert.Equal(t, "go-org403", rep.ID)
	assert.Len(t, rep.Rows, len(corpus(t)))
	assert.Equal(t, 0, rep.Faults)
	assert.Equal(t, 3, rep.Changed)
	assert.Equal(t, len(rep.Rows)-3, rep.NoOpinion)

	rows := rowsByName(rep)
	tok := rows["token 403"]
	require.NotNil(t, tok.Plugin)
	assert.Equal(t, verdict.ClassInvalidGrant, tok.Plugin.Class)
	assert.Equal(t, "plugin:go-org403", tok.Final.DecidedBy)
	assert.Equal(t, []string{"refresh backoff: 24h → 24h permanent", "re-login: no → yes"}, tok.EffectsThatDiffer)
	usage := rows["usage 403 permission_error"]
	require.NotNil(t, usage.Plugin)
	assert.Empty(t, usage.EffectsThatDiffer, "a usage invalid_grant skips the account just as org_policy does")
	// A messages verdict moves the request either way; re-login follows
	// only from the token endpoint's invalid_grant.
	assert.Empty(t, rows["messages 403 permission_error"].EffectsThatDiffer)
	assert.Nil(t, rows["token 429 Retry-After 120"].Plugin, "no opinion")
	assert.Equal(t, int64(120000), rows["token 429 Retry-After 120"].Final.RetryAfterMs)
}

// TestCheckFaults: every fault is listed with its kind and makes the check
// fail; the server's fallback (the built-in verdict) is what Final shows.
func TestCheckFaults(t *testing.T) {
	tests := []struct {
		fixture string
		limits  string
		kind    plugins.FaultKind
		faulted []string
	}{
		// The fixtures fault on "status":500 (badoutput also on 501-504).
		{"trap", "", plugins.FaultTrap, []string{"token 500", "usage 500", "messages 500 api_error"}},
		{"badoutput", "", plugins.FaultBadOutput, []string{"token 500", "token 503 html", "usage 500", "messages 500 api_error", "messages 502 bad gateway"}},
		{"spin", `{"callTimeoutMs": 1000}`, plugins.FaultTimeout, []string{"token 500", "usage 500", "messages 500 api_error"}},
	}
	for _, tc := range tests {
		t.Run(tc.fixture, func(t *testing.T) {
			rep, err := Check(context.Background(), Options{ManifestPath: fixture(t, tc.fixture, tc.limits), Cases: corpus(t), CacheDir: testCache})
			require.NoError(t, err)
			require.Empty(t, rep.LoadError)
			assert.True(t, rep.Failed())
			var faulted []string
			for _, row := range rep.Rows {
				if row.Fault == nil {
					continue
				}
				faulted = append(faulted, row.Name)
				assert.Equal(t, tc.kind, row.Fault.Kind, row.Name)
				assert.NotEmpty(t, row.Fault.Message)
				assert.Nil(t, row.Plugin)
				assert.Equal(t, row.Builtin, row.Final, "a fault falls back to the built-in verdict")
			}
			assert.Equal(t, tc.faulted, faulted)
			assert.Equal(t, len(tc.faulted), rep.Faults)
		})
	}
}

// TestCheckReachesThePluginAfterTheBreakerOpens: five faults in a row open
// the host's circuit breaker; check reloads the plugin so that the sixth
// case is still classified by it (and faults again), not skipped.
func TestCheckReachesThePluginAfterTheBreakerOpens(t *testing.T) {
	var cases []Case
	for i := range 7 {
		cases = append(cases, Case{Name: "usage 500 #" + string(rune('1'+i)), Source: verdict.SourceUsage, Status: 500})
	}
	cases = append(cases, Case{Name: "usage 403", Source: verdict.SourceUsage, Status: 403})
	rep, err := Check(context.Background(), Options{ManifestPath: fixture(t, "trap", ""), Cases: cases, CacheDir: testCache})
	require.NoError(t, err)
	assert.Equal(t, 7, rep.Faults)
	last := rep.Rows[len(rep.Rows)-1]
	require.NotNil(t, last.Plugin, "the plugin still answers after the breaker opened")
	assert.Equal(t, verdict.ClassInvalidGrant, last.Plugin.Class)
}

func TestCheckRejected(t *testing.T) {
	bad := fixture(t, "ok", "")
	tampered := filepath.Join(t.TempDir(), "tampered.json")
	data, err := os.ReadFile(bad)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	m["sha256"] = strings.Repeat("0", 64)
	b, _ := json.Marshal(m)
	require.NoError(t, os.WriteFile(tampered, b, 0o600))
	unknownKey := filepath.Join(t.TempDir(), "typo.json")
	require.NoError(t, os.WriteFile(unknownKey, []byte(`{"id":"x","version":"1","abi":"errclass v1","wasm":"x.wasm","sha256":"`+strings.Repeat("0", 64)+`","limits":{"callTimeout":5}}`), 0o600))

	tests := []struct {
		name, manifest, want string
	}{
		{"import outside the allow-list", fixture(t, "extraimport", ""), "ABI errclass v1 violation"},
		{"sha256 mismatch", tampered, "sha256 mismatch"},
		{"unknown manifest key", unknownKey, "callTimeout"},
		{"missing manifest", filepath.Join(t.TempDir(), "none.json"), "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Check(context.Background(), Options{ManifestPath: tc.manifest, Cases: corpus(t), CacheDir: testCache})
			require.NoError(t, err)
			assert.Contains(t, rep.LoadError, tc.want)
			assert.True(t, rep.Failed())
			assert.Empty(t, rep.Rows, "nothing is classified by a rejected plugin")
			var out bytes.Buffer
			require.NoError(t, WriteTable(&out, rep))
			assert.Contains(t, out.String(), "rejected, the server would not load it")
		})
	}
}

func TestEffectsThatDiffer(t *testing.T) {
	v := func(c verdict.Class, retry time.Duration) verdict.Verdict {
		return verdict.Verdict{Class: c, RetryAfter: retry}
	}
	tests := []struct {
		name            string
		f               verdict.Failure
		builtin, plugin verdict.Verdict
		want            []string
	}{
		{"same verdict", verdict.Failure{Source: verdict.SourceToken, Status: 403}, v(verdict.ClassOrgPolicy, 0), v(verdict.ClassOrgPolicy, 0), []string{}},
		{"token 403 made permanent", verdict.Failure{Source: verdict.SourceToken, Status: 403}, v(verdict.ClassOrgPolicy, 0), v(verdict.ClassInvalidGrant, 0),
			[]string{"refresh backoff: 24h → 24h permanent", "re-login: no → yes"}},
		{"token 429 made long", verdict.Failure{Source: verdict.SourceToken, Status: 429}, v(verdict.ClassRateLimited, 0), v(verdict.ClassOrgPolicy, 0),
			[]string{"refresh backoff: 5m doubling → 24h", "quota backoff in a quota pass: 1m doubling → 5m"}},
		{"usage 403 made transient", verdict.Failure{Source: verdict.SourceUsage, Status: 403}, v(verdict.ClassOrgPolicy, 0), v(verdict.ClassTransient, 0),
			[]string{"quota backoff: none → 1m doubling", "persisted: nothing → lastQuotaRefreshError"}},
		{"usage 429 made auth_expired", verdict.Failure{Source: verdict.SourceUsage, Status: 429}, v(verdict.ClassRateLimited, 0), v(verdict.ClassAuthExpired, 0),
			[]string{"quota backoff: 1m doubling → 5m", "persisted: lastQuotaRefreshError → lastQuotaRefreshError (if the retry fails)", "forced refresh and retry: no → yes"}},
		{"messages 500 made rate limited with a wait", verdict.Failure{Source: verdict.SourceMessages, Status: 500}, v(verdict.ClassTransient, 0), v(verdict.ClassRateLimited, 30*time.Second),
			[]string{"fallback: no → yes", "quota probe before moving: no → yes", "retry-after: 0 → 30s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, EffectsThatDiffer(tc.f, tc.builtin, tc.plugin))
		})
	}
}

func TestParseCases(t *testing.T) {
	tests := []struct {
		name, json, err string
	}{
		{"object form", `{"cases":[{"name":"a","source":"usage","status":403,"body":{"type":"error"}}]}`, ""},
		{"array form", `[{"name":"a","source":"token","network":true}]`, ""},
		{"unknown key", `{"cases":[{"name":"a","source":"usage","status":403,"stauts":1}]}`, `unknown field "stauts"`},
		{"bad source", `{"cases":[{"name":"a","source":"oauth","status":403}]}`, `source "oauth": must be token, usage or messages`},
		{"duplicate name", `{"cases":[{"name":"a","source":"usage","status":403},{"name":"a","source":"usage","status":401}]}`, "cases[1] (a): duplicate name"},
		{"network with a status", `{"cases":[{"name":"a","source":"usage","status":500,"network":true}]}`, "a network failure has no status"},
		{"no status", `{"cases":[{"name":"a","source":"usage"}]}`, "status is required"},
		{"no name", `{"cases":[{"source":"usage","status":403}]}`, "cases[0]: name is required"},
		{"bad expected class", `{"cases":[{"name":"a","source":"usage","status":403,"expect":{"class":"quota"}}]}`, `expect.class "quota": not a class`},
		{"bad decidedBy", `{"cases":[{"name":"a","source":"usage","status":403,"expect":{"decidedBy":"me"}}]}`, `expect.decidedBy "me"`},
		{"empty", `{"cases":[]}`, "no cases"},
		{"trailing data", `{"cases":[{"name":"a","source":"usage","status":403}]} {}`, "trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := ParseCases([]byte(tc.json))
			if tc.err == "" {
				require.NoError(t, err)
				assert.Len(t, cs, 1)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
		})
	}
	cs, err := ParseCases([]byte(`[{"name":"a","source":"usage","status":403,"body":"Forbidden","headers":{"Retry-After":"7"}},
		{"name":"b","source":"usage","status":403,"body":{"error":{"type":"permission_error"}}},
		{"name":"c","source":"token","network":true}]`))
	require.NoError(t, err)
	at := time.Now()
	assert.Equal(t, "Forbidden", string(cs[0].Failure(at).Body), "a string body is sent as is")
	assert.Equal(t, "7", cs[0].Failure(at).Header.Get("retry-after"))
	assert.Equal(t, `{"error":{"type":"permission_error"}}`, string(cs[1].Failure(at).Body), "a JSON body as compact JSON")
	assert.Equal(t, `{"error":{"type":"permission_error"}}`, cs[1].Failure(at).Message, "the message defaults to the body, as the server builds it")
	assert.Equal(t, "network error", cs[2].Failure(at).Message)
}

// TestMainCheck drives the command: the table, --json, --junit, --cases
// with expectations, and the exit statuses.
func TestMainCheck(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", testCache)
	manifest := goManifest(t)
	dir := t.TempDir()

	var out, errb bytes.Buffer
	code := Main([]string{"check", manifest}, &out, &errb)
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	table := out.String()
	assert.Contains(t, table, "plugin go-org403 1.0.0 (")
	assert.Regexp(t, `(?m)^FAILURE\s+BUILT-IN\s+PLUGIN\s+EFFECTS THAT DIFFER$`, table)
	assert.Regexp(t, `(?m)^token 403\s+org_policy\s+invalid_grant\s+refresh backoff: 24h → 24h permanent; re-login: no → yes$`, table)
	assert.Regexp(t, `(?m)^token 429 Retry-After 120\s+rate_limited, retry 2m\s+no opinion\s+-$`, table)
	assert.Contains(t, table, "26 cases: 3 changed by the plugin, 23 no opinion, 0 faults")

	own := filepath.Join(dir, "cases.json")
	require.NoError(t, os.WriteFile(own, []byte(`{"cases": [
		{"name": "usage 403 from acme", "source": "usage", "status": 403, "headers": {"anthropic-organization-id": "org-acme-0001"},
		 "expect": {"class": "invalid_grant", "decidedBy": "plugin"}},
		{"name": "usage 403 elsewhere", "source": "usage", "status": 403, "expect": {"class": "invalid_grant"}}]}`), 0o600))
	junitFile := filepath.Join(dir, "report.xml")
	out.Reset()
	code = Main([]string{"check", "--cases", own, manifest, "--junit", junitFile}, &out, &errb)
	assert.Equal(t, ExitFailed, code, "an unmet expectation fails the check")
	assert.Contains(t, out.String(), "usage 403 from acme (--cases)")
	assert.Regexp(t, `(?m)^expectations not met:\n  usage 403 elsewhere \(--cases\)\s+class org_policy, want invalid_grant$`, out.String())
	assert.Contains(t, out.String(), "28 cases: 4 changed by the plugin, 24 no opinion, 0 faults, 1 expectations not met")

	var doc struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Tests int    `xml:"tests,attr"`
			Fails int    `xml:"failures,attr"`
			Cases []struct {
				Name      string `xml:"name,attr"`
				Classname string `xml:"classname,attr"`
				Failure   *struct {
					Type    string `xml:"type,attr"`
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junitFile)
	require.NoError(t, err)
	require.NoError(t, xml.Unmarshal(b, &doc))
	require.Len(t, doc.Suites, 1)
	s := doc.Suites[0]
	assert.Equal(t, "acctpool-plugin-check", s.Name)
	assert.Equal(t, 28, s.Tests)
	assert.Equal(t, 1, s.Fails)
	for _, c := range s.Cases {
		assert.True(t, strings.HasPrefix(c.Classname, "plugincheck."), c.Classname)
		if c.Name == "usage 403 elsewhere (--cases)" {
			require.NotNil(t, c.Failure)
			assert.Equal(t, "expect", c.Failure.Type)
			assert.Equal(t, "class org_policy, want invalid_grant", c.Failure.Message)
		} else {
			assert.Nil(t, c.Failure, c.Name)
		}
	}

	out.Reset()
	code = Main([]string{"check", "--json", manifest}, &out, &errb)
	assert.Equal(t, ExitOK, code)
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	assert.Len(t, rep.Rows, 26)
	assert.Equal(t, 3, rep.Changed)
}

func TestMainCheckFaultsExitOne(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", testCache)
	var out, errb bytes.Buffer
	code := Main([]string{"check", fixture(t, "trap", "")}, &out, &errb)
	assert.Equal(t, ExitFailed, code)
	assert.Regexp(t, `(?m)^token 500\s+transient\s+FAULT trap\s+-$`, out.String())
	assert.Regexp(t, `(?m)^faults \(the server would use the built-in verdict\):\n  token 500\s+trap: `, out.String())
	assert.Contains(t, out.String(), "3 faults")

	out.Reset()
	code = Main([]string{"check", fixture(t, "extraimport", "")}, &out, &errb)
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, out.String(), "rejected, the server would not load it")
}

func TestMainUsageErrors(t *testing.T) {
	dir := t.TempDir()
	badCases := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(badCases, []byte(`{"cases":[{"name":"token 403","source":"token","status":403}]}`), 0o600))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage:"},
		{"unknown command", []string{"lint"}, `unknown command "lint"`},
		{"check without manifest", []string{"check"}, "want one MANIFEST"},
		{"check with two manifests", []string{"check", "a.json", "b.json"}, "got 2 arguments"},
		{"unknown flag", []string{"check", "--nope", "a.json"}, "flag provided but not defined: -nope"},
		{"missing cases file", []string{"check", "--cases", filepath.Join(dir, "none.json"), "a.json"}, "--cases: open"},
		{"cases reuse a corpus name", []string{"check", "--cases", badCases, "a.json"}, `case name "token 403" is a built-in case's`},
		{"init without lang", []string{"init", dir}, "want --lang go|assemblyscript and one DIR"},
		{"init unknown lang", []string{"init", "--lang", "rust", filepath.Join(dir, "x")}, `--lang "rust": want one of go, assemblyscript`},
		{"init into a non-empty dir", []string{"init", "--lang", "go", dir}, "is not empty"},
		{"init with a bad id", []string{"init", "--lang", "go", "--id", "My Plugin", filepath.Join(dir, "y")}, `plugin id "My Plugin" must match`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			assert.Equal(t, ExitUsage, Main(tc.args, &out, &errb))
			assert.Contains(t, errb.String(), tc.want)
		})
	}
	var out, errb bytes.Buffer
	assert.Equal(t, ExitOK, Main([]string{"help"}, &out, &errb))
	assert.Contains(t, out.String(), "acctpool plugin check [--cases FILE] [--junit FILE] [--json] MANIFEST")
}
