package core

import (
	"net/url"
	"strings"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// MainAccountID is the id under which the host's own account appears in
// views and routes.
const MainAccountID = "main"

// Account is one fallback account as the store sees it: its config entry
// merged with its state entry.
type Account struct {
	record.AccountConfig
	// State is the account's runtime state; the zero value when absent.
	State record.AccountState
	// Order is the account's position in the config (0 = first fallback).
	Order int
	// Problem, when not empty, says why the stored entry cannot be used at
	// all (for example "no refresh token"). Such entries are kept in the
	// files untouched and shown in views, but never routed to.
	Problem string
}

// Snapshot is one consistent read of the config and state files.
type Snapshot struct {
	// Config is nil when anthropic-auth.json does not exist.
	Config *record.ConfigFile
	// State is nil when anthropic-auth-state.json does not exist.
	State    *record.StateFile
	Settings policy.Settings
	Accounts []Account
	// Main is the state file's main section; never nil.
	Main *record.MainState
	// Warnings are the values that fell back to their defaults because
	// they had the wrong type; File is "config" or "state".
	Warnings []Warning
}

// Account returns the account with the given id, or the first whose label
// matches, and whether it was found.
func (s *Snapshot) Account(idOrLabel string) (*Account, bool) {
	key := strings.TrimSpace(idOrLabel)
	for i := range s.Accounts {
		if s.Accounts[i].ID == key {
			return &s.Accounts[i], true
		}
	}
	for i := range s.Accounts {
		if key != "" && s.Accounts[i].Label == key {
			return &s.Accounts[i], true
		}
	}
	return nil, false
}

// buildSnapshot merges config and state into the account list, applying
// the upstream normalization (BEHAVIOUR.md §1.3) without dropping
// anything from the files.
func buildSnapshot(cfg *record.ConfigFile, st *record.StateFile) (*Snapshot, error) {
	snap := &Snapshot{Config: cfg, State: st}
	w := &warnings{file: warnConfig}
	snap.Settings = parseSettings(cfg, w)
	snap.Warnings = append(fileWarnings(cfg, st), w.list...)
	if cfg != nil {
		cfg.MainAccountID = trimmedID(cfg.MainAccountID)
	}
	if st != nil && st.Main != nil {
		snap.Main = st.Main
	} else {
		snap.Main = &record.MainState{}
	}
	if cfg == nil {
		return snap, nil
	}
	snap.Accounts = make([]Account, 0, len(cfg.Accounts))
	for i, ac := range cfg.Accounts {
		a := Account{AccountConfig: ac, Order: i}
		a.ID = strings.TrimSpace(a.ID)
		if st != nil {
			if s, ok := st.Accounts[a.ID]; ok && s != nil {
				a.State = *s
			}
		}
		applyLegacyCredentials(&a)
		a.Problem = accountProblem(&a)
		snap.Accounts = append(snap.Accounts, a)
	}
	return snap, nil
}

// applyLegacyCredentials takes inline credentials from a very old config
// entry when the state file has none.
func applyLegacyCredentials(a *Account) {
	if len(a.Extra) == 0 {
		return
	}
	var s string
	if a.State.Refresh == "" && decodeExtra(a.Extra, "refresh", &s) && s != "" {
		a.State.Refresh = secret.Secret(strings.TrimSpace(s))
		if decodeExtra(a.Extra, "access", &s) {
			a.State.Access = secret.Secret(s)
		}
		var exp int64
		if decodeExtra(a.Extra, "expires", &exp) {
			a.State.Expires = exp
		}
	}
	if a.State.APIKey == "" && decodeExtra(a.Extra, "apiKey", &s) {
		a.State.APIKey = secret.Secret(strings.TrimSpace(s))
	}
}

func decodeExtra(x record.Extra, key string, v any) bool {
	raw, ok := x[key]
	if !ok {
		return false
	}
	return decodeSection(record.Extra{key: raw}, key, v) == nil
}

// accountProblem applies upstream's normalization rules as a diagnosis.
func accountProblem(a *Account) string {
	switch a.Type {
	case record.AccountOAuth:
		if strings.TrimSpace(string(a.State.Refresh)) == "" {
			return "no refresh token"
		}
	case record.AccountAPI:
		u, err := url.Parse(strings.TrimSpace(a.BaseURL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return "baseURL must be an http or https URL without credentials"
		}
		if a.State.APIKey == "" {
			return "no API key"
		}
	default:
		return "unknown account type " + string(a.Type)
	}
	if a.ID == "" {
		return "missing id"
	}
	return ""
}
