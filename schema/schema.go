package schema

import _ "embed"

// OpenRPC is the OpenRPC 1.x document describing every method acctpool
// serves, with the JSON Schemas (draft-07) of their params and results under
// components.schemas. rpc.discover returns it unchanged.
//
// # Notes
//
// The slice is shared; callers must not modify it. Validating against it
// lives in package schema/validate, so the server does not link a JSON
// Schema compiler (its init alone cost ~7 ms of start-up).
//
//go:embed openrpc.json
var OpenRPC []byte
