package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/schema"
)

// metaSchema compiles the vendored schema.OpenRPC meta-schema (see
// testdata/README.md for the source and the $schema rewrite).
func metaSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	load := func(name string) any {
		b, err := os.ReadFile("testdata/" + name)
		require.NoError(t, err)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		require.NoError(t, err)
		m, ok := v.(map[string]any)
		require.True(t, ok, name)
		// v6 does not accept the json-schema-tools meta-schema as a draft
		// (it names itself as its own $schema); both are draft-07 in practice.
		m["$schema"] = "http://json-schema.org/draft-07/schema#"
		return m
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	tools := load("json-schema-tools-meta-schema-1.8.0.json")
	require.NoError(t, c.AddResource("https://meta.json-schema.tools/", tools))
	require.NoError(t, c.AddResource("https://meta.json-schema.tools", tools))
	require.NoError(t, c.AddResource("https://meta.open-rpc.org/", load("openrpc-meta-schema-1.14.9.json")))
	sch, err := c.Compile("https://meta.open-rpc.org/")
	require.NoError(t, err)
	return sch
}

func TestOpenRPC_metaSchema(t *testing.T) {
	sch := metaSchema(t)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.OpenRPC))
	require.NoError(t, err)
	assert.NoError(t, sch.Validate(v))

	t.Run("a broken document is rejected", func(t *testing.T) {
		bad, err := jsonschema.UnmarshalJSON(strings.NewReader(`{"openrpc":"1.3.2","info":{"title":"x","version":"1"},"methods":[{"name":"m","params":[{"schema":{}}]}]}`))
		require.NoError(t, err)
		assert.Error(t, sch.Validate(bad), "a content descriptor without a name must fail")
	})
}

type method struct {
	Name     string            `json:"name"`
	Params   []json.RawMessage `json:"params"`
	Result   json.RawMessage   `json:"result"`
	Errors   []json.RawMessage `json:"errors"`
	Examples []struct {
		Name   string `json:"name"`
		Params []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"params"`
		Result *struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
	} `json:"examples"`
}

func methods(t *testing.T) []method {
	t.Helper()
	var d struct {
		Methods []method `json:"methods"`
	}
	require.NoError(t, json.Unmarshal(schema.OpenRPC, &d))
	return d.Methods
}

// The RPC surface (README.md, Server; schema/openrpc.json) plus the manual-clock methods.
var designMethods = []string{
	"initialize", "initialized", "shutdown", "exit", "ping", "rpc.discover",
	"accounts/list", "accounts/get", "accounts/add", "accounts/remove", "accounts/update", "accounts/setMain",
	"accounts/login/start", "accounts/login/finish", "accounts/refresh", "accounts/refreshDue", "accounts/resetBackoff",
	"quota/get", "quota/refresh", "quota/refreshDue", "quota/observe",
	"route/select", "route/report", "errors/classify",
	"config/get", "config/update", "plugins/list", "plugins/reload",
	"test/clock/set", "test/clock/advance",
}

func TestOpenRPC_describesEveryMethod(t *testing.T) {
	assert.ElementsMatch(t, designMethods, Methods())
	notifications := map[string]bool{"initialized": true, "exit": true}
	for _, m := range methods(t) {
		t.Run(m.Name, func(t *testing.T) {
			assert.NotEmpty(t, m.Examples, "every method has an example")
			if notifications[m.Name] {
				assert.Nil(t, m.Result, "notifications have no result")
				return
			}
			assert.NotNil(t, m.Result, "requests have a result")
		})
	}
}

// Examples are checked against the schemas they illustrate, so neither can
// rot alone.
func TestOpenRPC_examplesMatchSchemas(t *testing.T) {
	for _, m := range methods(t) {
		for _, ex := range m.Examples {
			t.Run(m.Name+"/"+ex.Name, func(t *testing.T) {
				params := map[string]json.RawMessage{}
				for _, p := range ex.Params {
					params[p.Name] = p.Value
				}
				b, err := json.Marshal(params)
				require.NoError(t, err)
				assert.NoError(t, ValidateParams(m.Name, b))
				if ex.Result != nil {
					assert.NoError(t, ValidateResult(m.Name, ex.Result.Value))
				}
			})
		}
	}
}

func TestOpenRPC_errorExamplesMatchErrorData(t *testing.T) {
	var d struct {
		Components struct {
			Errors map[string]struct {
				Code int             `json:"code"`
				Data json.RawMessage `json:"data"`
			} `json:"errors"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(schema.OpenRPC, &d))
	require.NotEmpty(t, d.Components.Errors)
	for name, e := range d.Components.Errors {
		t.Run(name, func(t *testing.T) {
			assert.NoError(t, ValidateErrorData(e.Data))
			domain := e.Code < -32768 || e.Code > -32000
			reservedOK := map[int]bool{-32602: true, -32002: true, -32800: true}
			assert.True(t, domain || reservedOK[e.Code], "code %d", e.Code)
		})
	}
}

func TestValidateResult(t *testing.T) {
	tests := []struct {
		name, method, result string
		ok                   bool
	}{
		{"ping answers an empty object", "ping", `{}`, true},
		{"ping with a member", "ping", `{"x":1}`, false},
		{"shutdown answers null", "shutdown", `null`, true},
		{"an account view never carries a token", "accounts/get",
			`{"id":"a","type":"oauth","main":false,"enabled":true,"order":0,"hasCredential":true,"usable":true,"needsRelogin":false,"access":"sk-ant-oat01-x"}`, false},
		{"an account view needs usable", "accounts/get",
			`{"id":"a","type":"oauth","main":false,"enabled":true,"order":0,"hasCredential":true,"needsRelogin":false}`, false},
		{"a verdict class is one of six", "errors/classify", `{"class":"weird","reason":"r","decidedBy":"builtin"}`, false},
		{"a route/report action is known", "route/report", `{"action":"return"}`, true},
		{"an unknown route/report action", "route/report", `{"action":"panic"}`, false},
		{"a pass summary", "quota/refreshDue", `{"results":[{"account":"a","outcome":"fetched"}]}`, true},
		{"a notification has no result", "initialized", `null`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateResult(tc.method, []byte(tc.result))
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
	t.Run("unknown method", func(t *testing.T) {
		assert.True(t, errors.Is(ValidateResult("nope", []byte(`{}`)), ErrUnknownMethod))
	})
}

func TestValidateParams(t *testing.T) {
	assert.NoError(t, ValidateParams("accounts/get", []byte(`{"id":"a"}`)))
	assert.Error(t, ValidateParams("accounts/get", []byte(`{}`)), "id is required")
	assert.Error(t, ValidateParams("accounts/get", []byte(`{"id":"a","extra":1}`)), "unknown names fail")
	assert.NoError(t, ValidateParams("accounts/list", nil))
}

func TestValidateErrorData(t *testing.T) {
	assert.NoError(t, ValidateErrorData([]byte(`{"kind":"refresh_backoff","account":"a","until":5,"retryAfterMs":1,"upstreamStatus":403,"class":"org_policy"}`)))
	assert.NoError(t, ValidateErrorData([]byte(`{"kind":"no_account_available","status":429,"errorType":"rate_limit_error","message":"m","accounts":[]}`)))
	assert.Error(t, ValidateErrorData([]byte(`{"kind":"no_account_available","status":429}`)))
	assert.Error(t, ValidateErrorData([]byte(`{"account":"a"}`)), "kind is required")
}
