package core

import (
	"fmt"
	"math"
	"time"

	json "github.com/goccy/go-json"
)

// RoutingMode is how requests are spread across accounts.
type RoutingMode string

// The routing modes of upstream-core.md section 5.
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

var defaultKillswitch = Thresholds{FiveHour: 5, SevenDay: 10, Scoped: 0}

type rawRefresh struct {
	Enabled                    *bool    `json:"enabled"`
	RefreshBeforeExpiryMinutes *float64 `json:"refreshBeforeExpiryMinutes"`
}

type rawQuota struct {
	Enabled                  *bool              `json:"enabled"`
	CheckIntervalMinutes     *float64           `json:"checkIntervalMinutes"`
	RefreshEveryNRequests    *float64           `json:"refreshEveryNRequests"`
	MinimumRemaining         map[string]float64 `json:"minimumRemaining"`
	FailClosedOnUnknownQuota *bool              `json:"failClosedOnUnknownQuota"`
}

type rawKillswitch struct {
	Enabled  *bool                         `json:"enabled"`
	Main     map[string]float64            `json:"main"`
	Accounts map[string]map[string]float64 `json:"accounts"`
}

// ParseSettings reads and defaults the settings of a config file. A present
// but malformed section is an error naming the key.
func ParseSettings(c *ConfigFile) (Settings, error) {
	s := Settings{
		Routing:             RoutingMainFirst,
		FallbackOn:          DefaultFallbackOn,
		RefreshEnabled:      true,
		RefreshBeforeExpiry: 240 * time.Minute,
		QuotaEnabled:        true,
		QuotaCheckInterval:  5 * time.Minute,
		FailClosedOnUnknown: true,
		Killswitch:          KillswitchSettings{Main: defaultKillswitch},
	}
	if c == nil {
		return s, nil
	}
	x := c.Extra
	var routing struct {
		Mode string `json:"mode"`
	}
	if err := decodeSection(x, "routing", &routing); err != nil {
		return s, err
	}
	switch m := RoutingMode(routing.Mode); m {
	case RoutingMainFirst, RoutingFallbackFirst, RoutingStickyBalanced:
		s.Routing = m
	}
	var fallbackOn []any
	if err := decodeSection(x, "fallbackOn", &fallbackOn); err != nil {
		return s, err
	}
	var codes []int
	for _, v := range fallbackOn {
		if f, ok := v.(float64); ok && f == math.Trunc(f) {
			codes = append(codes, int(f))
		}
	}
	if len(codes) > 0 {
		s.FallbackOn = codes
	}
	var r rawRefresh
	if err := decodeSection(x, "refresh", &r); err != nil {
		return s, err
	}
	if r.Enabled != nil && !*r.Enabled {
		s.RefreshEnabled = false
	}
	if r.RefreshBeforeExpiryMinutes != nil && *r.RefreshBeforeExpiryMinutes > 240 {
		d, err := minutesDuration("refresh.refreshBeforeExpiryMinutes", *r.RefreshBeforeExpiryMinutes)
		if err != nil {
			return s, err
		}
		s.RefreshBeforeExpiry = d
	}
	var q rawQuota
	if err := decodeSection(x, "quota", &q); err != nil {
		return s, err
	}
	if q.Enabled != nil {
		s.QuotaEnabled = *q.Enabled
		s.QuotaRouting = *q.Enabled
	}
	if q.CheckIntervalMinutes != nil && *q.CheckIntervalMinutes > 1 {
		d, err := minutesDuration("quota.checkIntervalMinutes", *q.CheckIntervalMinutes)
		if err != nil {
			return s, err
		}
		s.QuotaCheckInterval = d
	} else if q.CheckIntervalMinutes != nil {
		s.QuotaCheckInterval = time.Minute
	}
	if q.RefreshEveryNRequests != nil && *q.RefreshEveryNRequests > 0 {
		s.RefreshEveryNRequests = int(*q.RefreshEveryNRequests)
	}
	s.MinimumRemaining = thresholdsFrom(q.MinimumRemaining, Thresholds{})
	if q.FailClosedOnUnknownQuota != nil {
		s.FailClosedOnUnknown = *q.FailClosedOnUnknownQuota
		s.FailClosedExplicit = *q.FailClosedOnUnknownQuota
	}
	var k rawKillswitch
	if err := decodeSection(x, "killswitch", &k); err != nil {
		return s, err
	}
	s.Killswitch.Enabled = k.Enabled != nil && *k.Enabled
	s.Killswitch.Main = thresholdsFrom(k.Main, defaultKillswitch)
	if len(k.Accounts) > 0 {
		s.Killswitch.Accounts = map[string]Thresholds{}
		for id, t := range k.Accounts {
			s.Killswitch.Accounts[id] = thresholdsFrom(t, s.Killswitch.Main)
		}
	}
	return s, nil
}

// thresholdsFrom reads five_hour/5h, seven_day/1w and scoped; the canonical
// key wins over its alias, and a missing or non-finite value takes def.
func thresholdsFrom(m map[string]float64, def Thresholds) Thresholds {
	pick := func(canon, alias string, d float64) float64 {
		for _, k := range []string{canon, alias} {
			if v, ok := m[k]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				return v
			}
		}
		return d
	}
	return Thresholds{
		FiveHour: pick("five_hour", "5h", def.FiveHour),
		SevenDay: pick("seven_day", "1w", def.SevenDay),
		Scoped:   pick("scoped", "scoped", def.Scoped),
	}
}

// minutesDuration converts a positive minute count of the config file to a
// duration through [MillisDuration], so that a value too large for a
// time.Duration is refused (naming key) instead of wrapping around.
func minutesDuration(key string, minutes float64) (time.Duration, error) {
	ms := minutes * float64(time.Minute/time.Millisecond)
	if ms > float64(MaxMillis) {
		ms = float64(MaxMillis) + 1 // out of range; reported by MillisDuration
	}
	d, err := MillisDuration(key, int64(ms), 0, MaxMillis)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: %g minutes is too long (at most %d)", ErrConfigInvalid, key, minutes, MaxMillis/60000)
	}
	return d, nil
}

func decodeSection(x Extra, key string, v any) error {
	raw, ok := x[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %q: %s", ErrConfigInvalid, key, jsonErrorText(err))
	}
	return nil
}
