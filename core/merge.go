package core

import (
	"maps"
	"strings"

	json "github.com/goccy/go-json"
)

// MergeAccountState combines the state entry of one account as it is on
// disk now with the entry a writer wants to save, following upstream's
// mergeAccountRuntimeState (upstream-core.md 1.5). A writer holds a
// snapshot read some time ago; the merge makes sure that it cannot roll
// credentials back, hide a newer refresh error or replace a newer quota.
//
// The rules, in order:
//
//  1. The token changed when both sides have an access token and they
//     differ, or both have a refresh token and they differ.
//  2. An incoming header-sourced quota with an unchanged token is merged
//     into the disk quota ([MergeHeaderQuota]) before anything is compared.
//  3. Refresh error: no error on disk takes incoming's; errors on both
//     sides keep the later checkedAt (incoming on a tie); an error only on
//     disk is cleared only when incoming refreshed later than disk.
//  4. When the disk quota is newer (later [QuotaSnapshot.LatestCheck], or
//     equal with poll > headers > none) and no header merge happened:
//     a. token changed and incoming did not refresh later: disk wins
//     whole, taking only a later lastUsed (a stale writer cannot roll
//     credentials back);
//     b. token changed otherwise: incoming wins; profile only if incoming
//     has one; quota only if incoming's carries a source;
//     lastQuotaRefreshError only if incoming has one;
//     c. token unchanged: incoming wins but disk quota and disk
//     lastQuotaRefreshError stay.
//  5. Otherwise incoming wins; with a changed token a profile must come
//     from incoming and a source-less quota is dropped; incoming's
//     lastQuotaRefreshError (or its absence) is taken.
//
// "Incoming wins" is upstream's shallow spread: fields that incoming leaves
// empty keep the disk value, and unknown keys are merged with incoming
// winning per key. Neither argument is modified.
func MergeAccountState(disk, incoming *AccountState) *AccountState {
	if disk == nil && incoming == nil {
		return nil
	}
	if disk == nil {
		return cloneAccountState(incoming)
	}
	if incoming == nil {
		return cloneAccountState(disk)
	}
	tokenChanged := (disk.Access != "" && incoming.Access != "" && disk.Access != incoming.Access) ||
		(disk.Refresh != "" && incoming.Refresh != "" && disk.Refresh != incoming.Refresh)

	inQuota := incoming.Quota
	headerMerged := false
	if inQuota != nil && inQuota.Source == QuotaSourceHeaders && !tokenChanged {
		inQuota = MergeHeaderQuota(disk.Quota, inQuota)
		headerMerged = true
	}

	refreshErr := disk.LastRefreshError
	switch {
	case disk.LastRefreshError == nil:
		refreshErr = incoming.LastRefreshError
	case incoming.LastRefreshError != nil:
		if incoming.LastRefreshError.CheckedAt >= disk.LastRefreshError.CheckedAt {
			refreshErr = incoming.LastRefreshError
		}
	case incoming.LastRefreshedAt > disk.LastRefreshedAt:
		refreshErr = nil
	}

	if !headerMerged && quotaNewer(disk.Quota, incoming.Quota) {
		if tokenChanged && incoming.LastRefreshedAt <= disk.LastRefreshedAt {
			out := cloneAccountState(disk)
			out.LastUsed = max(disk.LastUsed, incoming.LastUsed)
			return out
		}
		out := spread(disk, incoming)
		out.LastRefreshError = cloneOpError(refreshErr)
		if tokenChanged {
			out.Profile = cloneRaw(incoming.Profile)
			out.Quota = nil
			if incoming.Quota != nil && incoming.Quota.Source != "" {
				out.Quota = cloneQuota(incoming.Quota)
			}
			out.LastQuotaRefreshError = cloneOpError(incoming.LastQuotaRefreshError)
		} else {
			out.Quota = cloneQuota(disk.Quota)
			out.LastQuotaRefreshError = cloneOpError(disk.LastQuotaRefreshError)
		}
		return out
	}

	out := spread(disk, incoming)
	out.LastRefreshError = cloneOpError(refreshErr)
	out.Quota = cloneQuota(inQuota)
	if inQuota == nil {
		out.Quota = cloneQuota(disk.Quota)
	}
	if tokenChanged {
		out.Profile = cloneRaw(incoming.Profile)
		if incoming.Quota == nil || incoming.Quota.Source == "" {
			out.Quota = nil
		}
	}
	out.LastQuotaRefreshError = cloneOpError(incoming.LastQuotaRefreshError)
	return out
}

// quotaNewer reports whether a is newer than b by upstream's ordering:
// later LatestCheck, or the same with a higher source precedence.
func quotaNewer(a, b *QuotaSnapshot) bool {
	ac, bc := a.LatestCheck(), b.LatestCheck()
	if ac != bc {
		return ac > bc
	}
	return sourceRank(quotaSource(a)) > sourceRank(quotaSource(b))
}

func quotaSource(q *QuotaSnapshot) string {
	if q == nil {
		return ""
	}
	return q.Source
}

// spread returns disk overlaid with every non-empty field of incoming, the
// Go reading of upstream's {...disk, ...incoming}. lastUsed never goes
// back. Errors and quota are left for the caller to decide.
func spread(disk, incoming *AccountState) *AccountState {
	out := cloneAccountState(disk)
	str := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	sec := func(dst *Secret, v Secret) {
		if v != "" {
			*dst = v
		}
	}
	num := func(dst *int64, v int64) {
		if v != 0 {
			*dst = v
		}
	}
	str(&out.AuthLineageID, incoming.AuthLineageID)
	str(&out.AnthropicAccountUUID, incoming.AnthropicAccountUUID)
	sec(&out.Access, incoming.Access)
	sec(&out.Refresh, incoming.Refresh)
	sec(&out.APIKey, incoming.APIKey)
	num(&out.Expires, incoming.Expires)
	num(&out.LastRefreshedAt, incoming.LastRefreshedAt)
	out.LastUsed = max(disk.LastUsed, incoming.LastUsed)
	if len(incoming.Profile) > 0 {
		out.Profile = cloneRaw(incoming.Profile)
	}
	if len(incoming.Extra) > 0 {
		if out.Extra == nil {
			out.Extra = Extra{}
		}
		maps.Copy(out.Extra, incoming.Extra)
	}
	return out
}

func cloneAccountState(a *AccountState) *AccountState {
	if a == nil {
		return nil
	}
	out := *a
	out.LastRefreshError = cloneOpError(a.LastRefreshError)
	out.LastQuotaRefreshError = cloneOpError(a.LastQuotaRefreshError)
	out.Quota = cloneQuota(a.Quota)
	out.Profile = cloneRaw(a.Profile)
	out.Extra = maps.Clone(a.Extra)
	return &out
}

func cloneOpError(e *OpError) *OpError {
	if e == nil {
		return nil
	}
	out := *e
	if e.Permanent != nil {
		p := *e.Permanent
		out.Permanent = &p
	}
	return &out
}

func cloneQuota(q *QuotaSnapshot) *QuotaSnapshot {
	if q == nil {
		return nil
	}
	out := *q
	if q.FiveHour != nil {
		w := *q.FiveHour
		out.FiveHour = &w
	}
	if q.SevenDay != nil {
		w := *q.SevenDay
		out.SevenDay = &w
	}
	if q.Scoped != nil {
		out.Scoped = append([]ScopedWindow{}, q.Scoped...)
	}
	if q.ExtraUsage != nil {
		x := *q.ExtraUsage
		if x.UtilizationPercent != nil {
			u := *x.UtilizationPercent
			x.UtilizationPercent = &u
		}
		out.ExtraUsage = &x
	}
	out.FieldSources = maps.Clone(q.FieldSources)
	if q.FallbackAdvised != nil {
		b := *q.FallbackAdvised
		out.FallbackAdvised = &b
	}
	return &out
}

func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return append(json.RawMessage{}, r...)
}

// migrateLegacyCredentials moves credentials that very old configs carried
// inline in an account entry into that account's state entry, and removes
// them from the config entry, so that the next config write (which never
// writes them, see AccountConfig.MarshalJSON) loses nothing. It follows
// upstream-core.md 1.4: a config token replaces a different state token
// only when the config entry is newer (max of lastRefreshedAt, lastUsed,
// addedAt), and then stale quota and errors go with the old token. It
// reports whether anything moved.
func migrateLegacyCredentials(cfg *ConfigFile, st *StateFile) bool {
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
			st.Accounts = map[string]*AccountState{}
		}
		s := st.Accounts[id]
		if s == nil {
			s = &AccountState{}
			st.Accounts[id] = s
		}
		adoptLegacy(ac, s)
		ac.Extra = maps.Clone(ac.Extra)
		for _, k := range legacyCredentialKeys {
			delete(ac.Extra, k)
		}
		moved = true
	}
	return moved
}

func hasLegacyCredentials(x Extra) bool {
	for _, k := range legacyCredentialKeys {
		if _, ok := x[k]; ok {
			return true
		}
	}
	return false
}

// adoptLegacy applies one config entry's inline credentials to s.
func adoptLegacy(ac *AccountConfig, s *AccountState) {
	access := Secret(strings.TrimSpace(extraString(ac.Extra, "access")))
	refresh := Secret(strings.TrimSpace(extraString(ac.Extra, "refresh")))
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
		s.APIKey = Secret(key)
	}
}

func extraString(x Extra, key string) string {
	var s string
	if raw, ok := x[key]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

func extraInt(x Extra, key string) int64 {
	var f float64
	if raw, ok := x[key]; ok {
		_ = json.Unmarshal(raw, &f)
	}
	return int64(f)
}
