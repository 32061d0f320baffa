package record

import (
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/jsonscan"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
	json "github.com/goccy/go-json"
)

// AccountType says how an account authenticates.
type AccountType string

// The account types of the upstream files.
const (
	AccountOAuth AccountType = "oauth"
	AccountAPI   AccountType = "api"
	// AccountUnknown is what views show for an entry whose type acctpool
	// does not know; the entry is listed, never routed.
	AccountUnknown AccountType = "unknown"
)

// OpError is a persisted record of a failed refresh or quota check, the
// upstream AccountOperationError. Its NextRetryAt is the backoff: until then
// the operation is not retried. Message is always redacted.
type OpError struct {
	Message                 string `json:"message"`
	CheckedAt               int64  `json:"checkedAt"`
	NextRetryAt             int64  `json:"nextRetryAt,omitempty"`
	RetryCount              int    `json:"retryCount,omitempty"`
	AccountIdentity         string `json:"accountIdentity,omitempty"`
	TokenHash               string `json:"tokenHash,omitempty"`
	RefreshTokenFingerprint string `json:"refreshTokenFingerprint,omitempty"`
	Status                  int    `json:"status,omitempty"`
	Permanent               *bool  `json:"permanent,omitempty"`
	// Class and DecidedBy are acctpool additions; upstream ignores them.
	Class     verdict.Class `json:"class,omitempty"`
	DecidedBy string        `json:"decidedBy,omitempty"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (e *OpError) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeOpError(s, e) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (e OpError) MarshalJSON() ([]byte, error) { return encodeDoc("", e.encodeJSON) }

// WithoutExtra is the record for views: the schema's keys only.
func (e *OpError) WithoutExtra() *OpError {
	if e == nil || e.Extra == nil {
		return e
	}
	c := *e
	c.Extra = nil
	return &c
}

// IsPermanent reports whether a refresh error needs a re-login (upstream
// isPermanentRefreshError, BEHAVIOUR.md §2.5): the explicit flag if set;
// else a 400 status; else a network-looking failure is not; else a record
// from before the flag existed whose backoff is 24 hours or more is.
func (e *OpError) IsPermanent() bool {
	if e == nil {
		return false
	}
	if e.Permanent != nil {
		return *e.Permanent
	}
	if e.Status != 0 {
		return e.Status == 400
	}
	if e.LooksLikeNetwork() {
		return false
	}
	return e.NextRetryAt > 0 && e.NextRetryAt-e.CheckedAt >= legacyPermanentBackoff.Milliseconds()
}

// LooksLikeNetwork reports whether a record without a status is a network
// failure: classified transient, or a message naming a connection error
// (older records carry only upstream's text).
func (err *OpError) LooksLikeNetwork() bool {
	if err.Status != 0 {
		return false
	}
	if err.Class == verdict.ClassTransient {
		return true
	}
	m := err.Message
	for _, s := range []string{"fetch failed", "network error", "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "UND_ERR_CONNECT_TIMEOUT", "connection reset", "connection refused"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// legacyPermanentBackoff is the backoff from which an old refresh error
// without status or flag counts as permanent.
const legacyPermanentBackoff = 24 * time.Hour

// QuotaWindow is one usage window of a quota snapshot.
type QuotaWindow struct {
	UsedPercent      float64 `json:"usedPercent"`
	RemainingPercent float64 `json:"remainingPercent"`
	ResetsAt         string  `json:"resetsAt,omitempty"`
	CheckedAt        int64   `json:"checkedAt"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// ScopedWindow is a model-scoped weekly window (for example "Fable only").
type ScopedWindow struct {
	ID               string  `json:"id"`
	Title            string  `json:"title"`
	ModelID          string  `json:"modelId,omitempty"`
	ModelName        string  `json:"modelName"`
	UsedPercent      float64 `json:"usedPercent"`
	RemainingPercent float64 `json:"remainingPercent"`
	ResetsAt         string  `json:"resetsAt,omitempty"`
	CheckedAt        int64   `json:"checkedAt"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// Window returns the scoped window as a plain window.
func (s ScopedWindow) Window() QuotaWindow {
	return QuotaWindow{UsedPercent: s.UsedPercent, RemainingPercent: s.RemainingPercent, ResetsAt: s.ResetsAt, CheckedAt: s.CheckedAt}
}

// Money is an amount in minor units of a currency.
type Money struct {
	AmountMinor float64 `json:"amountMinor"`
	Currency    string  `json:"currency"`
	Exponent    int     `json:"exponent"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// ExtraUsage is paid usage beyond the plan, when enabled.
type ExtraUsage struct {
	Used               Money    `json:"used"`
	Limit              Money    `json:"limit"`
	UtilizationPercent *float64 `json:"utilizationPercent,omitempty"`
	Severity           string   `json:"severity,omitempty"`
	Exhausted          bool     `json:"exhausted"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// Quota data sources, in precedence order poll > headers.
const (
	QuotaSourcePoll    = "poll"
	QuotaSourceHeaders = "headers"
)

// QuotaSnapshot is what acctpool knows of one account's quota, from a poll of
// the usage endpoint or from rate-limit response headers.
type QuotaSnapshot struct {
	FiveHour *QuotaWindow `json:"five_hour,omitempty"`
	SevenDay *QuotaWindow `json:"seven_day,omitempty"`
	// Scoped is nil when unknown; an empty non-nil slice means "owned,
	// none visible" and is written as [].
	Scoped              []ScopedWindow    `json:"scoped,omitzero"`
	ExtraUsage          *ExtraUsage       `json:"extraUsage,omitempty"`
	BindingWindow       string            `json:"bindingWindow,omitempty"`
	BindingWindowSource string            `json:"bindingWindowSource,omitempty"`
	FieldSources        map[string]string `json:"fieldSources,omitempty"`
	FallbackAdvised     *bool             `json:"fallbackAdvised,omitempty"`
	Source              string            `json:"source,omitempty"`
	AccountIdentity     string            `json:"accountIdentity,omitempty"`
	CheckedAt           int64             `json:"checkedAt,omitempty"`
	// Extra keeps keys acctpool does not model (a newer upstream's).
	Extra Extra `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (q *QuotaSnapshot) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeQuotaSnapshot(s, q) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (q QuotaSnapshot) MarshalJSON() ([]byte, error) { return encodeDoc("", q.encodeJSON) }

// WithoutExtra is the snapshot for views: the schema's keys only, at
// every level.
func (q *QuotaSnapshot) WithoutExtra() *QuotaSnapshot {
	if q == nil || !q.hasExtra() {
		return q
	}
	c := *q
	c.Extra = nil
	c.FiveHour, c.SevenDay = q.FiveHour.withoutExtra(), q.SevenDay.withoutExtra()
	if q.Scoped != nil {
		c.Scoped = make([]ScopedWindow, len(q.Scoped))
		for i, w := range q.Scoped {
			w.Extra = nil
			c.Scoped[i] = w
		}
	}
	if q.ExtraUsage != nil {
		u := *q.ExtraUsage
		u.Extra, u.Used.Extra, u.Limit.Extra = nil, nil, nil
		c.ExtraUsage = &u
	}
	return &c
}

// hasExtra reports whether q or anything in it keeps unknown keys.
func (q *QuotaSnapshot) hasExtra() bool {
	if q.Extra != nil || (q.FiveHour != nil && q.FiveHour.Extra != nil) || (q.SevenDay != nil && q.SevenDay.Extra != nil) {
		return true
	}
	for _, w := range q.Scoped {
		if w.Extra != nil {
			return true
		}
	}
	u := q.ExtraUsage
	return u != nil && (u.Extra != nil || u.Used.Extra != nil || u.Limit.Extra != nil)
}

func (w *QuotaWindow) withoutExtra() *QuotaWindow {
	if w == nil || w.Extra == nil {
		return w
	}
	c := *w
	c.Extra = nil
	return &c
}

// LatestCheck is the freshness key of a snapshot: the newest checkedAt of
// any window or of the snapshot itself (upstream quotaSnapshotCheckedAt).
func (q *QuotaSnapshot) LatestCheck() int64 {
	if q == nil {
		return 0
	}
	m := q.CheckedAt
	if q.FiveHour != nil && q.FiveHour.CheckedAt > m {
		m = q.FiveHour.CheckedAt
	}
	if q.SevenDay != nil && q.SevenDay.CheckedAt > m {
		m = q.SevenDay.CheckedAt
	}
	for _, s := range q.Scoped {
		if s.CheckedAt > m {
			m = s.CheckedAt
		}
	}
	return m
}

// AccountConfig is one entry of the accounts array of anthropic-auth.json:
// identity and settings only, never credentials.
type AccountConfig struct {
	ID         string      `json:"id"`
	Label      string      `json:"label,omitempty"`
	Type       AccountType `json:"type"`
	Enabled    *bool       `json:"enabled,omitempty"`
	AddedAt    int64       `json:"addedAt,omitempty"`
	BaseURL    string      `json:"baseURL,omitempty"`
	AuthHeader string      `json:"authHeader,omitempty"`
	Extra      Extra       `json:"-"`
}

// LegacyCredentialKeys are credential keys that very old configs carried
// inline. They are read once as a fallback and never written back to config.
var LegacyCredentialKeys = []string{"access", "refresh", "expires", "apiKey", "lastRefreshedAt"}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (a *AccountConfig) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeAccountConfig(s, a) })
}

// MarshalJSON writes the object once, unknown keys after the known ones,
// never legacy credentials (encode.go).
func (a AccountConfig) MarshalJSON() ([]byte, error) { return encodeDoc("", a.encodeJSON) }

// IsEnabled reports whether the account is enabled (absent means enabled).
func (a AccountConfig) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// ConfigFile is anthropic-auth.json, the user's file. acctpool rewrites it
// only when accounts or settings are changed on purpose, and keeps every
// key it does not model.
type ConfigFile struct {
	Version       int             `json:"version"`
	MainAccountID string          `json:"mainAccountId,omitempty"`
	Main          json.RawMessage `json:"main,omitempty"`
	Accounts      []AccountConfig `json:"accounts"`
	// Extra holds every other top-level key (routing, quota, killswitch,
	// refresh, fallbackOn, and anything newer), verbatim.
	Extra Extra `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (c *ConfigFile) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeConfigFile(s, c) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (c ConfigFile) MarshalJSON() ([]byte, error) { return encodeDoc("", c.encodeJSON) }

// AccountState is one entry of the accounts map of
// anthropic-auth-state.json: credentials, quota and errors.
type AccountState struct {
	AuthLineageID         string          `json:"authLineageId,omitempty"`
	AnthropicAccountUUID  string          `json:"anthropicAccountUuid,omitempty"`
	Access                secret.Secret   `json:"access,omitempty"`
	Refresh               secret.Secret   `json:"refresh,omitempty"`
	Expires               int64           `json:"expires,omitempty"`
	APIKey                secret.Secret   `json:"apiKey,omitempty"`
	LastUsed              int64           `json:"lastUsed,omitempty"`
	LastRefreshedAt       int64           `json:"lastRefreshedAt,omitempty"`
	LastRefreshError      *OpError        `json:"lastRefreshError,omitempty"`
	LastQuotaRefreshError *OpError        `json:"lastQuotaRefreshError,omitempty"`
	Quota                 *QuotaSnapshot  `json:"quota,omitempty"`
	Profile               json.RawMessage `json:"profile,omitempty"`
	// RateLimited is what the last messages 429 said about spent windows.
	RateLimited *SpentWindows `json:"rateLimited,omitempty"`
	Extra       Extra         `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (a *AccountState) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeAccountState(s, a) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (a AccountState) MarshalJSON() ([]byte, error) { return encodeDoc("", a.encodeJSON) }

// SpentWindows is an acctpool addition to an account's state: the resets
// (epoch ms) of the windows a messages 429 said are spent, so the account
// is not routed for them until then (BEHAVIOUR.md §5.1). Upstream ignores
// the key.
type SpentWindows struct {
	FiveHour  int64 `json:"five_hour,omitempty"`
	SevenDay  int64 `json:"seven_day,omitempty"`
	CheckedAt int64 `json:"checkedAt"`
	Extra     Extra `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (w *SpentWindows) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeSpentWindows(s, w) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (w SpentWindows) MarshalJSON() ([]byte, error) { return encodeDoc("", w.encodeJSON) }

// MainState is the "main" section of the state file: what acctpool knows of
// the host's own OAuth account. Its tokens live with the host, not here.
type MainState struct {
	Quota                 *QuotaSnapshot  `json:"quota,omitempty"`
	QuotaCheckedAt        int64           `json:"quotaCheckedAt,omitempty"`
	QuotaToken            string          `json:"quotaToken,omitempty"`
	LastQuotaAPIError     *OpError        `json:"lastQuotaApiError,omitempty"`
	QuotaErrorGeneration  int64           `json:"quotaErrorGeneration,omitempty"`
	QuotaErrorClearedAt   int64           `json:"quotaErrorClearedAt,omitempty"`
	LastRefreshError      *OpError        `json:"lastRefreshError,omitempty"`
	RefreshErrorClearedAt int64           `json:"refreshErrorClearedAt,omitempty"`
	RefreshLeaseID        string          `json:"refreshLeaseId,omitempty"`
	RefreshLeaseUntil     int64           `json:"refreshLeaseUntil,omitempty"`
	RefreshLeaseTokenHash string          `json:"refreshLeaseTokenHash,omitempty"`
	Profile               json.RawMessage `json:"profile,omitempty"`
	// RateLimited is what the last messages 429 said about spent windows.
	RateLimited *SpentWindows `json:"rateLimited,omitempty"`
	Extra       Extra         `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (m *MainState) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(s *jsonscan.Scanner) error { return decodeMainState(s, m) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (m MainState) MarshalJSON() ([]byte, error) { return encodeDoc("", m.encodeJSON) }

// StateFile is anthropic-auth-state.json, written by background work.
type StateFile struct {
	Version  int                      `json:"version"`
	Main     *MainState               `json:"main,omitempty"`
	Accounts map[string]*AccountState `json:"accounts"`
	Extra    Extra                    `json:"-"`
}

// UnmarshalJSON decodes the object in one pass, keeping unknown keys in
// Extra (decode.go).
func (s *StateFile) UnmarshalJSON(b []byte) error {
	return decodeDoc(b, func(sc *jsonscan.Scanner) error { return decodeStateFile(sc, s) })
}

// MarshalJSON writes the object once, unknown keys after the known ones (encode.go).
func (s StateFile) MarshalJSON() ([]byte, error) { return encodeDoc("", s.encodeJSON) }
