package validate

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/acctpool/acctpool/schema"
)

const cliStatusURL = "urn:acctpool:cli-status.schema.json"

var (
	cliOnce   sync.Once
	cliSchema *jsonschema.Schema
	cliErr    error
)

// ValidateCLIStatus checks the output of `acctpool status --json` against
// [schema.CLIStatus], whose account views refer to openrpc.json.
func ValidateCLIStatus(data []byte) error {
	cliOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft7)
		for url, doc := range map[string][]byte{docURL: schema.OpenRPC, cliStatusURL: schema.CLIStatus} {
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
			if err != nil {
				cliErr = fmt.Errorf("parse %s: %w", url, err)
				return
			}
			if err := c.AddResource(url, v); err != nil {
				cliErr = fmt.Errorf("load %s: %w", url, err)
				return
			}
		}
		cliSchema, cliErr = c.Compile(cliStatusURL)
	})
	if cliErr != nil {
		return cliErr
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("status --json: invalid JSON: %w", err)
	}
	if err := cliSchema.Validate(v); err != nil {
		return fmt.Errorf("status --json does not match cli-status.schema.json: %w", err)
	}
	return nil
}
