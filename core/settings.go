package core

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/millis"
	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
)

type rawRefresh struct {
	Enabled                    *bool    `json:"enabled"`
	RefreshBeforeExpiryMinutes *float64 `json:"refreshBeforeExpiryMinutes"`
}

type rawQuota struct {
	Enabled                  *bool                      `json:"enabled"`
	CheckIntervalMinutes     *float64                   `json:"checkIntervalMinutes"`
	RefreshEveryNRequests    *float64                   `json:"refreshEveryNRequests"`
	MinimumRemaining         map[string]json.RawMessage `json:"minimumRemaining"`
	FailClosedOnUnknownQuota *bool                      `json:"failClosedOnUnknownQuota"`
}

type rawKillswitch struct {
	Enabled  *bool                                 `json:"enabled"`
	Main     map[string]json.RawMessage            `json:"main"`
	Accounts map[string]map[string]json.RawMessage `json:"accounts"`
}

// parseSettingsStrict reads and defaults the settings of a config file. It is
// strict, for settings a host is about to write: any value of the wrong
// type is an error naming its key. Files on disk are read tolerantly
// (see [parseSettings]).
func parseSettingsStrict(c *record.ConfigFile) (policy.Settings, error) {
	w := &warnings{file: warnConfig}
	s := parseSettings(c, w)
	if len(w.list) > 0 {
		first := w.list[0]
		return s, errorf(ErrConfigInvalid, "%q: %s is %s", strings.SplitN(first.Path, ".", 2)[0], first.Path, first.Type)
	}
	return s, nil
}

// parseSettings reads and defaults the settings of a config file
// tolerantly (BEHAVIOUR.md §1.2): a value of the wrong type falls back to
// its default, is reported in w, and the rest is used.
func parseSettings(c *record.ConfigFile, w *warnings) policy.Settings {
	s := policy.Defaults()
	if c == nil {
		return s
	}
	x := c.Extra
	rd := sectionReader{x: x, w: w}
	var routing struct {
		Mode string `json:"mode"`
	}
	rd.section("routing", &routing)
	switch m := policy.RoutingMode(routing.Mode); m {
	case policy.RoutingMainFirst, policy.RoutingFallbackFirst, policy.RoutingStickyBalanced:
		s.Routing = m
	}
	var codes []int
	if raw, ok := x["fallbackOn"]; ok && string(raw) != "null" {
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			w.add("fallbackOn", raw, "[401, 403, 429]")
		}
		for i, v := range list {
			if f, ok := rd.number(fmt.Sprintf("fallbackOn[%d]", i), v); ok && f == math.Trunc(f) {
				codes = append(codes, int(f))
			}
		}
	}
	if len(codes) > 0 {
		s.FallbackOn = codes
	}
	var r rawRefresh
	rd.section("refresh", &r)
	if r.Enabled != nil && !*r.Enabled {
		s.RefreshEnabled = false
	}
	if r.RefreshBeforeExpiryMinutes != nil && *r.RefreshBeforeExpiryMinutes > 240 {
		if d, ok := minutesDuration(w, "refresh.refreshBeforeExpiryMinutes", *r.RefreshBeforeExpiryMinutes, "240"); ok {
			s.RefreshBeforeExpiry = d
		}
	}
	var q rawQuota
	rd.section("quota", &q)
	if q.Enabled != nil {
		s.QuotaEnabled = *q.Enabled
		s.QuotaRouting = *q.Enabled
	}
	if q.CheckIntervalMinutes != nil && *q.CheckIntervalMinutes > 1 {
		if d, ok := minutesDuration(w, "quota.checkIntervalMinutes", *q.CheckIntervalMinutes, "5"); ok {
			s.QuotaCheckInterval = d
		}
	} else if q.CheckIntervalMinutes != nil {
		s.QuotaCheckInterval = time.Minute
	}
	if q.RefreshEveryNRequests != nil && *q.RefreshEveryNRequests > 0 {
		s.RefreshEveryNRequests = int(*q.RefreshEveryNRequests)
	}
	s.MinimumRemaining = rd.thresholds("quota.minimumRemaining", q.MinimumRemaining, policy.Thresholds{})
	if q.FailClosedOnUnknownQuota != nil {
		s.FailClosedOnUnknown = *q.FailClosedOnUnknownQuota
		s.FailClosedExplicit = *q.FailClosedOnUnknownQuota
	}
	var k rawKillswitch
	rd.section("killswitch", &k)
	s.Killswitch.Enabled = k.Enabled != nil && *k.Enabled
	s.Killswitch.Main = rd.thresholds("killswitch.main", k.Main, policy.DefaultKillswitch)
	if len(k.Accounts) > 0 {
		s.Killswitch.Accounts = map[string]policy.Thresholds{}
		for id, t := range k.Accounts {
			s.Killswitch.Accounts[trimmedID(id)] = rd.thresholds("killswitch.accounts."+id, t, s.Killswitch.Main)
		}
	}
	return s
}

// minutesDuration converts a positive minute count of the config file to a
// duration through [millis.Duration], so that a value too large for a
// time.Duration is refused (naming key) instead of wrapping around.
func minutesDuration(w *warnings, key string, minutes float64, def string) (time.Duration, bool) {
	ms := minutes * float64(time.Minute/time.Millisecond)
	if ms > float64(millis.Max) {
		ms = float64(millis.Max) + 1 // out of range; reported by millis.Duration
	}
	d, err := millis.Duration(key, int64(ms), 0, millis.Max)
	if err != nil {
		if w != nil {
			w.list = append(w.list, Warning{File: w.file, Path: key, Type: fmt.Sprintf("a number of minutes out of range (at most %d)", millis.Max/60000), Default: def})
		}
		return 0, false
	}
	return d, true
}

func decodeSection(x record.Extra, key string, v any) error {
	raw, ok := x[key]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %q: %s", ErrConfigInvalid, key, record.JSONErrorText(err))
	}
	return nil
}
