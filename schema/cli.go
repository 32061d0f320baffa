package schema

import _ "embed"

// CLIStatus is the JSON Schema (draft-07) of what `acctpool status --json`
// prints. Its accounts are the accounts/list views of [OpenRPC], referenced
// by URN rather than copied, so the two cannot drift apart.
//
//go:embed cli-status.schema.json
var CLIStatus []byte
