package core

import (
	"maps"
	"strings"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
)

// migrateLegacyCredentials moves credentials that very old configs carried
// inline in an account entry into that account's state entry, and removes
// them from the config entry, so that the next config write (which never
// writes them, see AccountConfig.MarshalJSON) loses nothing. It follows
// BEHAVIOUR.md §1.4: a config token replaces a different state token
// only when the config entry is newer (max of lastRefreshedAt, lastUsed,
// addedAt), and then stale quota and errors go with the old token. It
// reports whether anything moved.
func migrateLegacyCredentials(cfg *record.ConfigFile, st *record.StateFile) bool {
	if cfg == nil || st == nil {
		return false
	}
	moved := false
	for i := range cfg.Accounts {
		ac := &cfg.Accounts[i]
		if !hasLegacyCredentials(ac.Extra) {
			continue
		}
		id := strings.TrimSpace(ac.ID)
		if id == "" {
			continue // nowhere to put them; config keeps them unwritten
		}
		if st.Accounts == nil {
			st.Accounts = map[string]*record.AccountState{}
		}
		s := st.Accounts[id]
		if s == nil {
			s = &record.AccountState{}
			st.Accounts[id] = s
		}
		adoptLegacy(ac, s)
		ac.Extra = maps.Clone(ac.Extra)
		for _, k := range record.LegacyCredentialKeys {
			delete(ac.Extra, k)
		}
		moved = true
	}
	return moved
}

func hasLegacyCredentials(x record.Extra) bool {
	for _, k := range record.LegacyCredentialKeys {
		if _, ok := x[k]; ok {
			return true
		}
	}
	return false
}

// adoptLegacy applies one config entry's inline credentials to s.
func adoptLegacy(ac *record.AccountConfig, s *record.AccountState) {
	access := secret.Secret(strings.TrimSpace(extraString(ac.Extra, "access")))
	refresh := secret.Secret(strings.TrimSpace(extraString(ac.Extra, "refresh")))
	if refresh != "" {
		cfgStamp := max(extraInt(ac.Extra, "lastRefreshedAt"), extraInt(ac.Extra, "lastUsed"), ac.AddedAt)
		switch {
		case s.Refresh == "":
			s.Access, s.Refresh = access, refresh
			s.Expires = extraInt(ac.Extra, "expires")
			s.LastRefreshedAt = max(s.LastRefreshedAt, extraInt(ac.Extra, "lastRefreshedAt"))
		case (access != "" && access != s.Access) || refresh != s.Refresh:
			if cfgStamp > max(s.LastRefreshedAt, s.LastUsed) {
				s.Access, s.Refresh = access, refresh
				s.Expires = extraInt(ac.Extra, "expires")
				s.LastRefreshedAt = cfgStamp
				s.Quota, s.LastRefreshError, s.LastQuotaRefreshError = nil, nil, nil
			}
		}
	}
	if key := strings.TrimSpace(extraString(ac.Extra, "apiKey")); key != "" && s.APIKey == "" {
		s.APIKey = secret.Secret(key)
	}
}

func extraString(x record.Extra, key string) string {
	var s string
	if raw, ok := x[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func extraInt(x record.Extra, key string) int64 {
	var f float64
	if raw, ok := x[key]; ok {
		_ = json.Unmarshal(raw, &f)
	}
	return int64(f)
}
