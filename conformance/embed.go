package conformance

import "embed"

// Cases holds the suite's cases, cases/*.json, as shipped with the module.
//
//go:embed cases/*.json
var Cases embed.FS
