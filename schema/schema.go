package schema

import _ "embed"

// OpenRPC is the OpenRPC 1.x document describing every method acctpool
// serves. rpc.discover returns it unchanged.
//
// # Notes
//
// The slice is shared; callers must not modify it.
//
//go:embed openrpc.json
var OpenRPC []byte
