package policy

import "time"

// RoutingMode is how requests are spread across accounts.
type RoutingMode string

// The routing modes of BEHAVIOUR.md §5.
const (
	RoutingMainFirst      RoutingMode = "main-first"
	RoutingFallbackFirst  RoutingMode = "fallback-first"
	RoutingStickyBalanced RoutingMode = "sticky-balanced"
)

// Thresholds are minimum remaining percentages per window.
type Thresholds struct {
	FiveHour float64 `json:"five_hour"`
	SevenDay float64 `json:"seven_day"`
	Scoped   float64 `json:"scoped"`
}

// Settings are the parsed, defaulted settings of anthropic-auth.json.
type Settings struct {
	Routing    RoutingMode
	FallbackOn []int
	// RefreshEnabled is false only when refresh.enabled is false.
	RefreshEnabled bool
	// RefreshBeforeExpiry is how long before expiry a token is refreshed;
	// never less than 4 h, as upstream.
	RefreshBeforeExpiry time.Duration
	// QuotaEnabled is false only when quota.enabled is false (core rule).
	QuotaEnabled bool
	// QuotaRouting is true only when quota.enabled is true (router rule:
	// main-account quota routing is opt-in).
	QuotaRouting          bool
	QuotaCheckInterval    time.Duration
	RefreshEveryNRequests int
	MinimumRemaining      Thresholds
	FailClosedOnUnknown   bool
	// FailClosedExplicit is true only when failClosedOnUnknownQuota is
	// explicitly true: upstream's router refuses main on unknown quota
	// only then (BEHAVIOUR.md §3.2).
	FailClosedExplicit bool
	Killswitch         KillswitchSettings
}

// KillswitchSettings are the killswitch thresholds.
type KillswitchSettings struct {
	Enabled  bool
	Main     Thresholds
	Accounts map[string]Thresholds
}

// For returns the killswitch thresholds of an account: its own entry, else
// the main thresholds, which are the default for everyone.
func (k KillswitchSettings) For(accountID string) Thresholds {
	if t, ok := k.Accounts[accountID]; ok {
		return t
	}
	return k.Main
}

// DefaultFallbackOn are the message statuses that move a request to the next
// account when fallbackOn is absent or empty.
var DefaultFallbackOn = []int{401, 403, 429}

// DefaultKillswitch are the killswitch thresholds when the config sets
// none (BEHAVIOUR.md §5.5).
var DefaultKillswitch = Thresholds{FiveHour: 5, SevenDay: 10, Scoped: 0}

// Defaults are the settings of a config file that sets none (BEHAVIOUR.md
// §1.2): main-first routing, refresh 4 h before expiry, quota checks every
// 5 minutes failing closed on unknown quota, the default fallbackOn and
// killswitch thresholds (the killswitch itself off).
func Defaults() Settings {
	return Settings{
		Routing:             RoutingMainFirst,
		FallbackOn:          DefaultFallbackOn,
		RefreshEnabled:      true,
		RefreshBeforeExpiry: 240 * time.Minute,
		QuotaEnabled:        true,
		QuotaCheckInterval:  5 * time.Minute,
		FailClosedOnUnknown: true,
		Killswitch:          KillswitchSettings{Main: DefaultKillswitch},
	}
}
