package conformance

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func tree(t *testing.T, s string) any {
	t.Helper()
	v := decodeTree([]byte(s))
	require.NotNil(t, v, s)
	return v
}

func TestMatch(t *testing.T) {
	actual := `{"a":1,"b":{"c":"hello world","d":[1,2]},"n":1767225600000}`
	tests := []struct {
		name, want string
		ok         bool
	}{
		{"subset of keys", `{"a":1}`, true},
		{"numbers by value", `{"a":1.0}`, true},
		{"wrong value", `{"a":2}`, false},
		{"nested", `{"b":{"c":"hello world"}}`, true},
		{"arrays need equal length", `{"b":{"d":[1]}}`, false},
		{"absent passes for a missing key", `{"z":{"$absent":true}}`, true},
		{"absent fails for a present key", `{"a":{"$absent":true}}`, false},
		{"contains", `{"b":{"c":{"$contains":"world"}}}`, true},
		{"between", `{"n":{"$between":[1767225600000,1767225600001]}}`, true},
		{"oneOf with absent", `{"z":{"$oneOf":[false,{"$absent":true}]}}`, true},
		{"gt fails", `{"a":{"$gt":1}}`, false},
		{"len", `{"b":{"d":{"$len":2}}}`, true},
		{"unknown matcher", `{"a":{"$nope":1}}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			probs := match("x", tree(t, tc.want), tree(t, actual), true)
			assert.Equal(t, tc.ok, len(probs) == 0, "%v", probs)
		})
	}
}

func TestEnvExpand(t *testing.T) {
	e := env{t0: 1767225600000, fake: "http://127.0.0.1:1"}
	v, err := e.expand(tree(t, `{"a":"$t0+24h","b":"$t0-1s","c":"$iso:t0+14m","d":"$unix:t0+1h","e":"$fake/api-route","f":"$ms:90s","g":"plain"}`))
	require.NoError(t, err)
	b, _ := json.Marshal(v)
	assert.JSONEq(t, `{"a":1767312000000,"b":1767225599000,"c":"2026-01-01T00:14:00Z","d":"1767229200","e":"http://127.0.0.1:1/api-route","f":90000,"g":"plain"}`, string(b))
	_, err = e.expand("$t0+5y")
	assert.Error(t, err)
}

func TestParseCase_rejectsTypos(t *testing.T) {
	_, err := ParseCase([]byte(`{"id":"x","evidence":{"a":["b"]},"steps":[],"expect":{"cals":{}}}`))
	assert.Error(t, err)
	_, err = ParseCase([]byte(`{"id":"x","steps":[]}`))
	assert.ErrorContains(t, err, "evidence")
	_, err = ParseCase([]byte(`{"id":"x","evidence":{"a":["b"]},"steps":[{"call":"ping","advance":"1s"}]}`))
	assert.ErrorContains(t, err, "exactly one")
}

func TestFake_scriptsTimesAndRecords(t *testing.T) {
	f := NewFake(map[string][]Exchange{"usage": {{Respond: Response{Status: 429}, Times: 2}, {Respond: Response{Status: 200, Body: map[string]any{"ok": true}}}}})
	defer f.Close()
	get := func() int {
		req, _ := newGet(f.URL() + UsagePath)
		resp, err := defaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, []int{429, 429, 200, 418}, []int{get(), get(), get(), get()})
	assert.Equal(t, 4, f.Calls()["usage"])
	probs := strings.Join(f.Problems(), "\n")
	assert.Contains(t, probs, "unscripted")
	assert.Contains(t, probs, "anthropic-beta", "the wire contract is checked on every request")
}

var defaultClient = http.DefaultClient

func newGet(url string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err == nil {
		req.Header.Set("Authorization", "Bearer A0")
	}
	return req, err
}
