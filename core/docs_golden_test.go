package core

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	gojson "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docsGolden is what the files' decoding and encoding produced for a set
// of inputs before the one-pass codec replaced Marshal-then-splice; the
// codec must produce the same, with one deliberate change: unknown keys
// inside quota windows, scoped windows and extra usage are kept (the old
// codec dropped them). ACCTPOOL_UPDATE_GOLDEN=1 rewrites it.
const docsGolden = "testdata/docs-golden.txt"

// docInput is one file's bytes and its kind: config, state or routing.
type docInput struct {
	name, kind string
	data       []byte
}

// docEdgeCases are the corners: unknown keys at every level, wrong types
// at every level, duplicates, nulls, case, escapes, numbers, bad syntax.
var docEdgeCases = []docInput{
	{"unknown keys everywhere", "state", []byte(`{"version":1,"zz":{"a":[1, 2]},"aa":"<&>","main":{"x":1,"quota":{"five_hour":{"usedPercent":1,"remainingPercent":99,"checkedAt":5,"extraW":1},"q2":true,"scoped":[{"id":"a","title":"t","modelName":"m","usedPercent":1,"remainingPercent":2,"checkedAt":3,"unk":1}]},"lastRefreshError":{"message":"m","checkedAt":1,"unk":{"b":null}}},"accounts":{"a":{"access":"x","unk":[],"quota":{"extraUsage":{"used":{"amountMinor":1,"currency":"USD","exponent":2,"x":1},"limit":{"amountMinor":2,"currency":"USD","exponent":2},"exhausted":false}},"rateLimited":{"five_hour":5,"checkedAt":1,"u":2},"profile":{ "tier" : "x" }},"b":null}}`)},
	{"wrong types", "state", []byte(`{"version":"1","main":{"quotaCheckedAt":"x","quota":{"five_hour":{"usedPercent":"a"},"checkedAt":1.5,"scoped":[{"id":1}],"fieldSources":{"a":1}}},"accounts":{"a":{"expires":"$t0","lastRefreshError":{"message":5,"checkedAt":"x","permanent":"yes"},"quota":"nope","rateLimited":[1]}}}`)},
	{"accounts an array", "state", []byte(`{"version":1,"accounts":[1,2]}`)},
	{"account a string", "state", []byte(`{"version":1,"accounts":{"a":"str","b":{}}}`)},
	{"main not an object", "state", []byte(`{"version":1,"main":"x","accounts":{}}`)},
	{"duplicates", "state", []byte(`{"version":1,"version":2,"accounts":{"a":{"expires":"x","expires":5},"a":{"expires":7,"lastUsed":3}},"zz":1,"zz":2}`)},
	{"duplicate wrong last", "state", []byte(`{"accounts":{"a":{"expires":5,"expires":"x","quota":{"five_hour":{"usedPercent":1,"usedPercent":null},"extraUsage":{"used":{"amountMinor":1},"used":{"currency":"EUR"}}}}}}`)},
	{"nulls", "state", []byte(`{"version":null,"main":null,"accounts":{"a":{"access":null,"quota":{"five_hour":null,"scoped":null,"extraUsage":{"utilizationPercent":null,"used":null}},"profile":null,"lastRefreshError":null}}}`)},
	{"case folding", "state", []byte(`{"Version":3,"accounts":{"a":{"Access":"x","quota":{"five_hour":{"UsedPercent":3,"usedpercent":4},"Source":"poll","scoped":[{"ID":"s","MODELNAME":"m"}]}}}}`)},
	{"escapes", "state", []byte("{\"accounts\":{\"a<b>\":{\"access\":\"<&>\\u2028\\ud800 \u00e9 \xff\",\"zz\":\"<\\u2028>\u2029\",\"quota\":{\"source\":\"\\u0041\\/\"}}},\"x\\u0041\":{\"\\u0042\":\"\\ud83d\\ude00\"}}")},
	{"empty", "state", []byte(`{}`)},
	{"empty accounts", "state", []byte(`{"accounts":{}}`)},
	{"empty sections", "state", []byte(`{"version":1,"accounts":{"a":{}},"main":{}}`)},
	{"scoped empty", "state", []byte(`{"accounts":{"a":{"quota":{"scoped":[],"fieldSources":{}}}}}`)},
	{"numbers", "state", []byte(`{"version":1,"accounts":{"a":{"expires":1e3,"lastUsed":-0,"lastRefreshedAt":99999999999999999999,"quota":{"five_hour":{"usedPercent":1e-7,"remainingPercent":1e21,"checkedAt":12},"seven_day":{"usedPercent":12.500,"remainingPercent":-0.0,"checkedAt":1.0},"extraUsage":{"used":{"amountMinor":1e400}}}}}}`)},
	{"whitespace", "state", []byte("{\n\t\"version\" :\t1 ,\r\n \"accounts\" : { \"a\" : { \"access\" : \"x\" , \"zz\" : [ 1 , { \"k\" : [ ] } , { } ] } } , \"yy\" : { }\n}\n")},
	{"truncated", "state", []byte(`{"version":1,`)},
	{"trailing comma", "state", []byte("{\n\"a\":1,\n}")},
	{"trailing garbage", "state", []byte(`{"a":1} x`)},
	{"bad string", "state", []byte("{\"accounts\":{\"a\":{\"access\":\"x\ny\"}}}")},
	{"config legacy and unknown", "config", []byte(`{"version":1,"accounts":[{"id":"a","type":"oauth","access":"legacy","refresh":"r","apiKey":"k","unk":1,"label":"<A>"},null,{"id":5}],"routing":{"mode":"x"},"main":{ "k" : [1, 2] },"fallbackOn":[401,429]}`)},
	{"config accounts a string", "config", []byte(`{"accounts":"x"}`)},
	{"config account a number", "config", []byte(`{"accounts":[{"id":"a","type":"oauth"},1]}`)},
	{"config wrong scalars", "config", []byte(`{"version":"2","mainAccountId":7,"main":null,"accounts":[{"id":"a","enabled":"no","addedAt":"x","type":3,"baseURL":false}]}`)},
	{"config empty", "config", []byte(`{}`)},
	{"routing", "routing", []byte(`{"version":1,"updatedAt":5,"assignments":{"k":{"accountId":"a","family":"sonnet","assignedAt":1,"lastSeenAt":2,"initialInputBytes":3,"quotaCheckedAt":4,"unk":1},"n":null},"zz":true}`)},
	{"routing wrong types", "routing", []byte(`{"version":1,"assignments":{"k":{"accountId":5,"lastSeenAt":"x","affinityModelId":"m"}}}`)},
	{"routing assignments wrong", "routing", []byte(`{"version":1,"updatedAt":"x","assignments":[]}`)},
}

// docInputs gathers the edge cases, the fuzz seed corpora of the loaders
// and every conformance case's given files.
func docInputs(t *testing.T) []docInput {
	in := append([]docInput(nil), docEdgeCases...)
	for kind, dir := range map[string]string{"state": "testdata/fuzz/FuzzLoadState", "config": "testdata/fuzz/FuzzLoadConfig"} {
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		require.NoError(t, err)
		for _, f := range files {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			lines := strings.Split(string(b), "\n")
			require.GreaterOrEqual(t, len(lines), 2, f)
			lit := strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")")
			s, err := strconv.Unquote(lit)
			require.NoError(t, err, f)
			in = append(in, docInput{"fuzz " + filepath.Base(f), kind, []byte(s)})
		}
	}
	cases, err := filepath.Glob("../conformance/cases/*.json")
	require.NoError(t, err)
	for _, f := range cases {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var c struct {
			Given struct {
				Config    json.RawMessage `json:"config"`
				State     json.RawMessage `json:"state"`
				StateText string          `json:"stateText"`
			} `json:"given"`
		}
		require.NoError(t, json.Unmarshal(b, &c), f)
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if len(c.Given.Config) > 0 {
			in = append(in, docInput{name + " config", "config", c.Given.Config})
		}
		if len(c.Given.State) > 0 {
			in = append(in, docInput{name + " state", "state", c.Given.State})
		}
		if c.Given.StateText != "" {
			in = append(in, docInput{name + " stateText", "state", []byte(c.Given.StateText)})
		}
	}
	sort.SliceStable(in, func(i, j int) bool { return in[i].name < in[j].name })
	return in
}

// docOutcome is what the codec makes of one input: the file it would
// write, the compact encoding, the warnings, or that the input is corrupt.
func docOutcome(t *testing.T, in docInput) string {
	path := filepath.Join(t.TempDir(), "doc.json")
	require.NoError(t, os.WriteFile(path, in.data, 0o600))
	var v any
	var warns []Warning
	var err error
	switch in.kind {
	case "config":
		var c *record.ConfigFile
		c, _, err = filestore.ReadConfigFile(path)
		if err == nil {
			v, warns = c, fileWarnings(c, nil)
		}
	case "state":
		var st *record.StateFile
		st, _, err = filestore.ReadStateFile(path)
		if err == nil {
			v, warns = st, fileWarnings(nil, st)
		}
	case "routing":
		var f *stickyFile
		f, err = readStickyFile(path)
		if err == nil {
			v = f
		}
	}
	if err != nil {
		return "corrupt\n"
	}
	var b strings.Builder
	file, err := filestore.Encode(v)
	require.NoError(t, err)
	b.Write(file)
	compact, err := gojson.Marshal(v)
	require.NoError(t, err)
	b.WriteString("-- compact\n")
	b.Write(compact)
	b.WriteString("\n")
	for _, w := range warns {
		fmt.Fprintf(&b, "-- warning %s\n", w)
	}
	return b.String()
}

// TestDocs_golden: every input decodes and encodes as it did before the
// one-pass codec, byte for byte.
func TestDocs_golden(t *testing.T) {
	var got bytes.Buffer
	for _, in := range docInputs(t) {
		fmt.Fprintf(&got, "=== %s (%s)\n%s", in.name, in.kind, docOutcome(t, in))
	}
	if os.Getenv("ACCTPOOL_UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(docsGolden, got.Bytes(), 0o644))
		return
	}
	want, err := os.ReadFile(docsGolden)
	require.NoError(t, err)
	wantSec, gotSec := strings.Split(string(want), "=== "), strings.Split(got.String(), "=== ")
	require.Equal(t, len(wantSec), len(gotSec), "number of inputs")
	for i := range wantSec {
		assert.Equal(t, wantSec[i], gotSec[i])
	}
}

// TestDocs_corruptNamesLineAndColumn: bad JSON in a file is reported with
// the line and column where the syntax breaks, never with the content.
func TestDocs_corruptNamesLineAndColumn(t *testing.T) {
	tests := []struct{ data, where string }{
		{"{\n  \"version\": 1,\n  x\n}\n", "line 3, column 3"},
		{"{\"version\": 1,\n \"accounts\": {\"a\": {\"access\": \"sk-secret\n\"}}}", "line 2, column 41"},
		{"{\"version\": 1}\ngarbage", "line 2, column 1"},
		{"{\"version\": 1,", "line 1, column 15"},
	}
	for _, tc := range tests {
		path := filepath.Join(t.TempDir(), "anthropic-auth-state.json")
		require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
		_, _, err := filestore.ReadStateFile(path)
		require.ErrorIs(t, err, ErrCorruptFile)
		assert.Contains(t, err.Error(), "invalid JSON at "+tc.where)
		assert.NotContains(t, err.Error(), "sk-secret")
	}
}
