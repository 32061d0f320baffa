package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/acctpool/acctpool/schema"
)

// ErrUnknownMethod is returned by [ValidateResult] and [ValidateParams] for a
// method the document does not describe.
var ErrUnknownMethod = errors.New("method not in openrpc.json")

// docURL is the base URL the document is registered under. It is never
// fetched: the compiler only sees the embedded bytes.
const docURL = "urn:acctpool:openrpc.json"

// ValidateResult checks a method's JSON result against the result schema of
// that method in [schema.OpenRPC]. It returns nil when the result conforms, an
// error naming the method and each violation when it does not, and
// [ErrUnknownMethod] for a method the document lacks.
//
// Notification-only methods (initialized, exit) have no result; any result
// for them is an error.
func ValidateResult(method string, result []byte) error {
	return validate(method, "result", result)
}

// ValidateParams checks a request's by-name params object against the
// params of that method in [schema.OpenRPC]: required names present, no unknown
// names, each value valid against its schema.
func ValidateParams(method string, params []byte) error {
	return validate(method, "params", params)
}

// ValidateErrorData checks the data member of an error the server sent:
// against NoRouteErrorData for kind no_account_available, else ErrorData.
func ValidateErrorData(data []byte) error {
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return fmt.Errorf("error data: %w", err)
	}
	name := "ErrorData"
	if head.Kind == "no_account_available" {
		name = "NoRouteErrorData"
	}
	sch, err := compiled("#/components/schemas/" + name)
	if err != nil {
		return err
	}
	return check(sch, "error data", data)
}

// Methods returns the names of every method in [schema.OpenRPC], in document order.
func Methods() []string {
	d, err := loadDoc()
	if err != nil {
		return nil
	}
	names := make([]string, len(d.Methods))
	for i, m := range d.Methods {
		names[i] = m.Name
	}
	return names
}

type docMethod struct {
	Name   string `json:"name"`
	Params []struct {
		Name     string `json:"name"`
		Required bool   `json:"required"`
	} `json:"params"`
	Result *json.RawMessage `json:"result"`
}

type doc struct {
	Methods []docMethod `json:"methods"`
}

var (
	docOnce sync.Once
	docVal  doc
	docErr  error

	compilerMu sync.Mutex
	compiler   *jsonschema.Compiler
	schemas    = map[string]*jsonschema.Schema{}
)

func loadDoc() (doc, error) {
	docOnce.Do(func() {
		docErr = json.Unmarshal(schema.OpenRPC, &docVal)
	})
	return docVal, docErr
}

// compiled returns the schema at a JSON pointer fragment of the document,
// compiling it once.
func compiled(fragment string) (*jsonschema.Schema, error) {
	compilerMu.Lock()
	defer compilerMu.Unlock()
	if s, ok := schemas[fragment]; ok {
		return s, nil
	}
	if compiler == nil {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema.OpenRPC))
		if err != nil {
			return nil, fmt.Errorf("parse openrpc.json: %w", err)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft7)
		if err := c.AddResource(docURL, v); err != nil {
			return nil, fmt.Errorf("load openrpc.json: %w", err)
		}
		compiler = c
	}
	s, err := compiler.Compile(docURL + fragment)
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", fragment, err)
	}
	schemas[fragment] = s
	return s, nil
}

func validate(method, part string, body []byte) error {
	d, err := loadDoc()
	if err != nil {
		return fmt.Errorf("parse openrpc.json: %w", err)
	}
	idx := -1
	for i, m := range d.Methods {
		if m.Name == method {
			idx = i
			break
		}
	}
	if idx < 0 {
		return fmt.Errorf("%w: %s", ErrUnknownMethod, method)
	}
	m := d.Methods[idx]
	if part == "result" {
		if m.Result == nil {
			return fmt.Errorf("%s: notification has no result, got %s", method, abbreviate(body))
		}
		sch, err := compiled(fmt.Sprintf("#/methods/%d/result/schema", idx))
		if err != nil {
			return err
		}
		return check(sch, method+" result", body)
	}
	return checkParams(idx, m, body)
}

func checkParams(idx int, m docMethod, body []byte) error {
	var params map[string]json.RawMessage
	if len(bytes.TrimSpace(body)) == 0 || string(bytes.TrimSpace(body)) == "null" {
		params = map[string]json.RawMessage{}
	} else if err := json.Unmarshal(body, &params); err != nil {
		return fmt.Errorf("%s params: not an object: %w", m.Name, err)
	}
	var problems []string
	known := map[string]bool{}
	for i, p := range m.Params {
		known[p.Name] = true
		raw, ok := params[p.Name]
		if !ok {
			if p.Required {
				problems = append(problems, fmt.Sprintf("missing required %q", p.Name))
			}
			continue
		}
		sch, err := compiled(fmt.Sprintf("#/methods/%d/params/%d/schema", idx, i))
		if err != nil {
			return err
		}
		if err := check(sch, p.Name, raw); err != nil {
			problems = append(problems, err.Error())
		}
	}
	for name := range params {
		if !known[name] {
			problems = append(problems, fmt.Sprintf("unknown param %q", name))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%s params: %s", m.Name, strings.Join(problems, "; "))
	}
	return nil
}

func check(sch *jsonschema.Schema, what string, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: invalid JSON: %w", what, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s does not match openrpc.json: %w", what, err)
	}
	return nil
}

func abbreviate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
