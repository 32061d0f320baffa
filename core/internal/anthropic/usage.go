package anthropic

import (
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/record"
)

// usageWindow, usageLimit and usagePayload are the parts of the usage
// endpoint's answer we read.
type usageWindow struct {
	Utilization *float64 `json:"utilization"`
	ResetsAt    *string  `json:"resets_at"`
}

type usageLimit struct {
	Kind     string   `json:"kind"`
	Group    string   `json:"group"`
	Percent  *float64 `json:"percent"`
	ResetsAt *string  `json:"resets_at"`
	IsActive *bool    `json:"is_active"`
	Scope    *struct {
		Model *struct {
			ID          *string `json:"id"`
			DisplayName *string `json:"display_name"`
		} `json:"model"`
	} `json:"scope"`
}

type usagePayload struct {
	FiveHour   *usageWindow `json:"five_hour"`
	SevenDay   *usageWindow `json:"seven_day"`
	Limits     []usageLimit `json:"limits"`
	ExtraUsage *struct {
		IsEnabled    *bool    `json:"is_enabled"`
		MonthlyLimit *float64 `json:"monthly_limit"`
		UsedCredits  *float64 `json:"used_credits"`
		Utilization  *float64 `json:"utilization"`
	} `json:"extra_usage"`
	Spend *struct {
		Severity *string `json:"severity"`
		Limit    *struct {
			Currency *string `json:"currency"`
			Exponent *int    `json:"exponent"`
		} `json:"limit"`
	} `json:"spend"`
}

var (
	slugRun      = regexp.MustCompile(`[^a-z0-9]+`)
	currencyCode = regexp.MustCompile(`^[A-Za-z]{3}$`)
)

// ParseUsage turns a usage endpoint response into a quota snapshot checked
// at now (BEHAVIOUR.md §3.1). It accepts both payload shapes: flat
// five_hour/seven_day windows, and limits[] with weekly_scoped entries. A
// field of an unexpected type is dropped and the rest is used; only a
// body that is not JSON fails.
func ParseUsage(body []byte, now time.Time) (*record.QuotaSnapshot, error) {
	var p usagePayload
	if err := record.DecodeLenient(body, &p); err != nil {
		return nil, fmt.Errorf("usage response: %s", record.JSONErrorText(err))
	}
	at := now.UnixMilli()
	q := &record.QuotaSnapshot{Source: record.QuotaSourcePoll, CheckedAt: at, Scoped: []record.ScopedWindow{}, FieldSources: map[string]string{}}
	q.FiveHour = pollWindow(p.FiveHour, at)
	q.SevenDay = pollWindow(p.SevenDay, at)
	seen := map[string]bool{}
	for _, l := range p.Limits {
		if l.Kind != "weekly_scoped" || l.Group != "weekly" || l.Percent == nil || !finite(*l.Percent) {
			continue
		}
		if l.Scope == nil || l.Scope.Model == nil || l.Scope.Model.DisplayName == nil || strings.TrimSpace(*l.Scope.Model.DisplayName) == "" {
			continue
		}
		name := *l.Scope.Model.DisplayName
		identity, modelID := name, ""
		if l.Scope.Model.ID != nil && *l.Scope.Model.ID != "" {
			identity, modelID = *l.Scope.Model.ID, *l.Scope.Model.ID
		}
		id := "claude-weekly-scoped-" + strings.Trim(slugRun.ReplaceAllString(strings.ToLower(identity), "-"), "-")
		if seen[id] {
			continue
		}
		seen[id] = true
		used := clampPercent(*l.Percent)
		q.Scoped = append(q.Scoped, record.ScopedWindow{
			ID: id, Title: name + " only", ModelID: modelID, ModelName: name,
			UsedPercent: used, RemainingPercent: clampPercent(100 - used), ResetsAt: deref(l.ResetsAt), CheckedAt: at,
		})
	}
	for _, l := range p.Limits {
		if l.IsActive == nil || !*l.IsActive {
			continue
		}
		switch {
		case l.Kind == "session":
			q.BindingWindow = "five_hour"
		case l.Kind == "weekly_all":
			q.BindingWindow = "seven_day"
		case l.Kind == "weekly_scoped" && l.Group == "weekly" && l.Scope != nil && l.Scope.Model != nil:
			for _, s := range q.Scoped {
				if (l.Scope.Model.ID != nil && s.ModelID == *l.Scope.Model.ID) || (l.Scope.Model.DisplayName != nil && s.ModelName == *l.Scope.Model.DisplayName) {
					q.BindingWindow = s.ID
				}
			}
		}
		if q.BindingWindow != "" {
			q.BindingWindowSource = record.QuotaSourcePoll
		}
		break
	}
	q.ExtraUsage = parseExtraUsage(&p)
	for field, present := range map[string]bool{
		"five_hour": q.FiveHour != nil, "seven_day": q.SevenDay != nil, "scoped": true,
		"extraUsage": q.ExtraUsage != nil, "bindingWindow": q.BindingWindow != "",
	} {
		if present {
			q.FieldSources[field] = record.QuotaSourcePoll
		}
	}
	return q, nil
}

func parseExtraUsage(p *usagePayload) *record.ExtraUsage {
	x := p.ExtraUsage
	if x == nil || x.IsEnabled == nil || !*x.IsEnabled || x.UsedCredits == nil || x.MonthlyLimit == nil ||
		!finite(*x.UsedCredits) || !finite(*x.MonthlyLimit) {
		return nil
	}
	currency, exponent := "USD", 2
	if p.Spend != nil && p.Spend.Limit != nil {
		if p.Spend.Limit.Currency != nil {
			currency = *p.Spend.Limit.Currency
		}
		if p.Spend.Limit.Exponent != nil {
			exponent = *p.Spend.Limit.Exponent
		}
	}
	if !currencyCode.MatchString(currency) || exponent < 0 || exponent > 20 {
		return nil
	}
	u := &record.ExtraUsage{
		Used:      record.Money{AmountMinor: *x.UsedCredits, Currency: currency, Exponent: exponent},
		Limit:     record.Money{AmountMinor: *x.MonthlyLimit, Currency: currency, Exponent: exponent},
		Exhausted: *x.UsedCredits >= *x.MonthlyLimit,
	}
	if x.Utilization != nil && finite(*x.Utilization) {
		v := *x.Utilization
		u.UtilizationPercent = &v
	}
	if p.Spend != nil && p.Spend.Severity != nil {
		u.Severity = *p.Spend.Severity
	}
	return u
}

func pollWindow(w *usageWindow, at int64) *record.QuotaWindow {
	if w == nil || w.Utilization == nil || !finite(*w.Utilization) {
		return nil
	}
	used := clampPercent(*w.Utilization)
	return &record.QuotaWindow{UsedPercent: used, RemainingPercent: clampPercent(100 - used), ResetsAt: deref(w.ResetsAt), CheckedAt: at}
}

const rateLimitPrefix = "anthropic-ratelimit-unified-"

// maxResetUnix is the latest reset time a header may give (the end of year
// 9999): later ones have no RFC 3339 form and are ignored as unknown.
const maxResetUnix = 253402300799

// QuotaFromHeaders harvests anthropic-ratelimit-unified-* response headers
// into a snapshot (BEHAVIOUR.md §3.6). It returns nil when the response
// carries no quota (neither 5h nor 7d utilization).
func QuotaFromHeaders(h http.Header, now time.Time) *record.QuotaSnapshot {
	at := now.UnixMilli()
	q := &record.QuotaSnapshot{Source: record.QuotaSourceHeaders, CheckedAt: at, FieldSources: map[string]string{}}
	for _, w := range []struct {
		key, field string
		dst        **record.QuotaWindow
	}{{"5h", "five_hour", &q.FiveHour}, {"7d", "seven_day", &q.SevenDay}} {
		u, err := strconv.ParseFloat(strings.TrimSpace(h.Get(rateLimitPrefix+w.key+"-utilization")), 64)
		if err != nil || !finite(u) {
			continue
		}
		used := clampPercent(math.Round(u * 100))
		win := &record.QuotaWindow{UsedPercent: used, RemainingPercent: 100 - used, CheckedAt: at}
		if secs, err := strconv.ParseInt(strings.TrimSpace(h.Get(rateLimitPrefix+w.key+"-reset")), 10, 64); err == nil && secs > 0 && secs <= maxResetUnix {
			win.ResetsAt = time.Unix(secs, 0).UTC().Format(time.RFC3339)
		}
		*w.dst = win
		q.FieldSources[w.field] = record.QuotaSourceHeaders
	}
	if q.FiveHour == nil && q.SevenDay == nil {
		return nil
	}
	if v := h.Get(rateLimitPrefix + "fallback"); v != "" {
		adv := v == "available"
		q.FallbackAdvised = &adv
		q.FieldSources["fallbackAdvised"] = record.QuotaSourceHeaders
	}
	if claim := h.Get(rateLimitPrefix + "representative-claim"); claim != "" {
		q.BindingWindow, q.BindingWindowSource = claim, record.QuotaSourceHeaders
		q.FieldSources["bindingWindow"] = record.QuotaSourceHeaders
	}
	return q
}

// SpentFromHeaders reads which windows a 429's rate-limit headers say are
// spent: a window whose status is "rejected", whose utilization is at
// least 1 or whose remaining is 0, with a reset in the future. It returns
// nil when none is (BEHAVIOUR.md §5.1).
func SpentFromHeaders(h http.Header, now time.Time) *record.SpentWindows {
	sp := &record.SpentWindows{CheckedAt: now.UnixMilli()}
	for _, w := range []struct {
		key string
		dst *int64
	}{{"5h", &sp.FiveHour}, {"7d", &sp.SevenDay}} {
		p := rateLimitPrefix + w.key + "-"
		u, uerr := strconv.ParseFloat(strings.TrimSpace(h.Get(p+"utilization")), 64)
		rem, rerr := strconv.ParseFloat(strings.TrimSpace(h.Get(p+"remaining")), 64)
		spent := strings.EqualFold(strings.TrimSpace(h.Get(p+"status")), "rejected") ||
			(uerr == nil && finite(u) && u >= 1) || (rerr == nil && rem == 0)
		secs, err := strconv.ParseInt(strings.TrimSpace(h.Get(p+"reset")), 10, 64)
		if !spent || err != nil || secs <= 0 || !time.Unix(secs, 0).After(now) {
			continue
		}
		*w.dst = secs * 1000
	}
	if sp.FiveHour == 0 && sp.SevenDay == 0 {
		return nil
	}
	return sp
}

func clampPercent(f float64) float64 {
	if !finite(f) {
		return 0
	}
	return math.Max(0, math.Min(100, f))
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// finite reports whether f is a number (not NaN, not an infinity).
func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
