package core

import (
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// MainCredentials are the host's own OAuth tokens. The host owns them: it
// hands them over with accounts/setMain and receives rotated ones through
// EventMainRefreshed.
type MainCredentials struct {
	Access  secret.Secret `json:"access"`
	Refresh secret.Secret `json:"refresh"`
	// Expires is the access token's expiry, epoch ms.
	Expires int64 `json:"expires"`
}

// AccountView is what hosts see of an account: never a credential, always
// whether it can serve now and, if not, why and until when.
type AccountView struct {
	ID      string             `json:"id"`
	Label   string             `json:"label,omitempty"`
	Type    record.AccountType `json:"type"`
	Main    bool               `json:"main"`
	Enabled bool               `json:"enabled"`
	// Order is the fallback priority (0 first); -1 for main.
	Order int `json:"order"`
	// HasCredential is true when a token or key is stored.
	HasCredential bool `json:"hasCredential"`
	// ExpiresAt is the access token's expiry, epoch ms (OAuth only).
	ExpiresAt       int64  `json:"expiresAt,omitempty"`
	BaseURL         string `json:"baseURL,omitempty"`
	LastUsed        int64  `json:"lastUsed,omitempty"`
	LastRefreshedAt int64  `json:"lastRefreshedAt,omitempty"`
	// Usable says whether the account can serve a request now.
	Usable bool `json:"usable"`
	// Reason explains Usable (for example "refresh backoff", "below 5h
	// threshold"); Until is when that reason ends, epoch ms, 0 if unknown.
	Reason              string                `json:"reason,omitempty"`
	Until               int64                 `json:"until,omitempty"`
	NeedsRelogin        bool                  `json:"needsRelogin"`
	RefreshBackoffUntil int64                 `json:"refreshBackoffUntil,omitempty"`
	QuotaBackoffUntil   int64                 `json:"quotaBackoffUntil,omitempty"`
	LastRefreshError    *record.OpError       `json:"lastRefreshError,omitempty"`
	LastQuotaError      *record.OpError       `json:"lastQuotaError,omitempty"`
	Quota               *record.QuotaSnapshot `json:"quota,omitempty"`
	// Problem is set when the stored entry itself is unusable.
	Problem string `json:"problem,omitempty"`
	// PersistPending is true when the account's token was rotated but the
	// save of the new tokens failed: they are held in memory (and used),
	// and the save is retried. PersistError says why it failed.
	PersistPending bool   `json:"persistPending,omitempty"`
	PersistError   string `json:"persistError,omitempty"`
	// Fetched is set by quota/refresh only: true when the quota was
	// fetched now, false when the answer is the cached snapshot (the
	// account's quota is backed off, or another process is polling it).
	Fetched *bool `json:"fetched,omitempty"`
}

// AccountSpec is an account to add, for accounts/add.
type AccountSpec struct {
	ID         string             `json:"id,omitempty"`
	Label      string             `json:"label,omitempty"`
	Type       record.AccountType `json:"type"`
	Enabled    *bool              `json:"enabled,omitempty"`
	Access     secret.Secret      `json:"access,omitempty"`
	Refresh    secret.Secret      `json:"refresh,omitempty"`
	Expires    int64              `json:"expires,omitempty"`
	APIKey     secret.Secret      `json:"apiKey,omitempty"`
	BaseURL    string             `json:"baseURL,omitempty"`
	AuthHeader string             `json:"authHeader,omitempty"`
}

// AccountPatch changes an account, for accounts/update. Nil fields stay.
type AccountPatch struct {
	ID         string         `json:"id"`
	Label      *string        `json:"label,omitempty"`
	Enabled    *bool          `json:"enabled,omitempty"`
	Position   *int           `json:"position,omitempty"`
	BaseURL    *string        `json:"baseURL,omitempty"`
	AuthHeader *string        `json:"authHeader,omitempty"`
	APIKey     *secret.Secret `json:"apiKey,omitempty"`
}

// LoginStart is the first half of an OAuth PKCE login.
type LoginStart struct {
	URL         string `json:"url"`
	State       string `json:"state"`
	RedirectURI string `json:"redirectUri"`
	ExpiresAt   int64  `json:"expiresAt"`
}

// PassResult is one account's line of a background pass summary.
type PassResult struct {
	Account string `json:"account"`
	// Outcome is "refreshed", "fetched", "skipped", "backoff" or "failed".
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Class is the failure's verdict class, if it failed.
	Class verdict.Class `json:"class,omitempty"`
	// Until is when an armed or active backoff ends, epoch ms.
	Until int64 `json:"until,omitempty"`
}

// PassSummary is the result of one background pass.
type PassSummary struct {
	Results []PassResult `json:"results"`
}
