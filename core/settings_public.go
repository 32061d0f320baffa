package core

import "github.com/acctpool/acctpool/core/internal/policy"

// Settings are the parsed, defaulted settings of anthropic-auth.json
// (BEHAVIOUR.md §1.2), as the policy decides with them; the commands read
// them from a [Snapshot].
type Settings = policy.Settings

// RoutingMode is how requests are spread across accounts (BEHAVIOUR.md §5).
type RoutingMode = policy.RoutingMode

// The routing modes.
const (
	RoutingMainFirst      = policy.RoutingMainFirst
	RoutingFallbackFirst  = policy.RoutingFallbackFirst
	RoutingStickyBalanced = policy.RoutingStickyBalanced
)
