package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/policy"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
)

// accountView builds the sanitized view of a fallback account.
func accountView(snap *Snapshot, a *Account, now time.Time) AccountView {
	v := AccountView{
		ID: a.ID, Label: a.Label, Type: a.Type, Enabled: a.IsEnabled(), Order: a.Order,
		BaseURL: secret.Redact(a.BaseURL), LastUsed: a.State.LastUsed, LastRefreshedAt: a.State.LastRefreshedAt,
		LastRefreshError: a.State.LastRefreshError.WithoutExtra(), LastQuotaError: a.State.LastQuotaRefreshError.WithoutExtra(),
		Quota: a.State.Quota.WithoutExtra(), Problem: a.Problem,
	}
	if a.Type != record.AccountOAuth && a.Type != record.AccountAPI {
		v.Type = record.AccountUnknown
	}
	if a.Type == record.AccountAPI {
		v.HasCredential = a.State.APIKey != ""
	} else {
		v.HasCredential = a.State.Refresh != ""
		v.ExpiresAt = a.State.Expires
	}
	sub := accountSubject(a)
	fillView(&v, snap.Settings, &sub, now)
	return v
}

// withPersistState adds to v whether the account's rotated tokens are
// still waiting to be saved (see Engine.keepUnsaved).
func (e *Engine) withPersistState(v AccountView) AccountView {
	v.PersistPending, v.PersistError = e.store.pendingOf(v.ID)
	return v
}

// mainView builds the sanitized view of the host's main account.
func (e *Engine) mainView(snap *Snapshot, now time.Time) AccountView {
	c, ok := e.mainCredentials()
	return mainViewOf(snap, c, ok, now)
}

// MainViewOnRecord is main's view judged on what the files record, for
// commands that run without the host (acctpool status): the host owns
// main's tokens and never hands them to a CLI, so the judgement assumes the
// host still holds the refresh token the last refresh error was recorded
// for, and reads that error, the backoffs and the quota snapshot.
func MainViewOnRecord(snap *Snapshot, now time.Time) AccountView {
	return mainViewOf(snap, MainCredentials{}, true, now)
}

func mainViewOf(snap *Snapshot, c MainCredentials, ok bool, now time.Time) AccountView {
	m := snap.Main
	v := AccountView{
		ID: MainAccountID, Label: "main", Type: record.AccountOAuth, Main: true, Enabled: true, Order: -1,
		HasCredential: ok && c.Refresh != "", ExpiresAt: c.Expires,
		LastRefreshError: m.LastRefreshError.WithoutExtra(), LastQuotaError: m.LastQuotaAPIError.WithoutExtra(), Quota: m.Quota.WithoutExtra(),
	}
	sub := mainSubject(snap, c, ok)
	fillView(&v, snap.Settings, &sub, now)
	return v
}

// fillView sets a view's judgement and backoffs. needsRelogin, usable and
// reason come from the one judgement, so they never disagree.
func fillView(v *AccountView, s policy.Settings, sub *policy.Subject, now time.Time) {
	if sub.Kind == KindMain || sub.Kind == KindOAuth {
		fp := policy.FingerprintFor(sub.RefreshError, sub.Refresh)
		if until, ok := policy.RefreshBackoffUntil(sub.RefreshError, sub.Identity, now, fp); ok {
			v.RefreshBackoffUntil = epochMs(until)
		}
		v.NeedsRelogin = policy.NeedsRelogin(sub.RefreshError, sub.Identity, fp)
	}
	if rec := sub.QuotaError; rec != nil && fromMs(rec.NextRetryAt).After(now) {
		v.QuotaBackoffUntil = rec.NextRetryAt
	}
	j := policy.Judge(s, sub, policy.Need{Purpose: policy.ForView}, now)
	v.Usable, v.Reason = j.Usable, j.Text()
	if j.Usable && j.Reason == policy.ReasonUsable && j.Detail == "" {
		v.Reason = ""
	}
	if !j.Until.IsZero() {
		v.Until = epochMs(j.Until)
	}
}

// ListAccounts returns every account, main first, never with credentials.
func (e *Engine) ListAccounts(ctx context.Context) ([]AccountView, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	now := e.now()
	out := []AccountView{e.mainView(snap, now)}
	for i := range snap.Accounts {
		out = append(out, e.withPersistState(accountView(snap, &snap.Accounts[i], now)))
	}
	return out, nil
}

// GetAccount returns one account by id or label ("main" for the host's).
func (e *Engine) GetAccount(ctx context.Context, id string) (AccountView, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return AccountView{}, err
	}
	return e.viewOf(snap, id)
}

func (e *Engine) viewOf(snap *Snapshot, id string) (AccountView, error) {
	if id == MainAccountID {
		return e.mainView(snap, e.now()), nil
	}
	a, ok := snap.Account(id)
	if !ok {
		return AccountView{}, errorf(ErrNoAccount, "%q", id)
	}
	return e.withPersistState(accountView(snap, a, e.now())), nil
}

// validateSpec checks an account to add and reports every problem at once.
func validateSpec(s *AccountSpec) error {
	var problems []string
	s.ID, s.Label = strings.TrimSpace(s.ID), strings.TrimSpace(s.Label)
	if s.ID == MainAccountID || s.Label == MainAccountID {
		problems = append(problems, `"main" is reserved for the host's account`)
	}
	switch s.Type {
	case record.AccountOAuth:
		if strings.TrimSpace(string(s.Refresh)) == "" {
			problems = append(problems, "field refresh: an OAuth account needs a refresh token")
		}
		if s.BaseURL != "" || s.APIKey != "" {
			problems = append(problems, "fields baseURL/apiKey belong to API-key routes")
		}
	case record.AccountAPI:
		u, err := url.Parse(strings.TrimSpace(s.BaseURL))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			problems = append(problems, "field baseURL: must be an http or https URL without credentials")
		}
		if strings.TrimSpace(string(s.APIKey)) == "" {
			problems = append(problems, "field apiKey: an API-key route needs a key")
		}
		if s.AuthHeader != "" && s.AuthHeader != "x-api-key" && s.AuthHeader != "authorization-bearer" {
			problems = append(problems, `field authHeader: must be "x-api-key" or "authorization-bearer"`)
		}
	default:
		problems = append(problems, `field type: must be "oauth" or "api"`)
	}
	if len(problems) > 0 {
		return errorf(ErrConfigInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// AddAccount adds a fallback account, or replaces the one with the same id
// or label (a re-login): its addedAt is kept, its errors and quota dropped.
func (e *Engine) AddAccount(ctx context.Context, spec AccountSpec) (AccountView, error) {
	if err := validateSpec(&spec); err != nil {
		return AccountView{}, err
	}
	if spec.ID == "" {
		id, err := e.newUUID()
		if err != nil {
			return AccountView{}, err
		}
		spec.ID = id
	}
	now := e.now()
	var id string
	snap, err := e.store.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
		idx := -1
		for i, a := range cfg.Accounts {
			if a.ID == spec.ID || (spec.Label != "" && a.Label == spec.Label) {
				idx = i
				break
			}
		}
		entry := record.AccountConfig{ID: spec.ID, Label: spec.Label, Type: spec.Type, Enabled: spec.Enabled, AddedAt: epochMs(now)}
		if spec.Type == record.AccountAPI {
			entry.BaseURL = strings.TrimSpace(spec.BaseURL)
			entry.AuthHeader = spec.AuthHeader
			if entry.AuthHeader == "" {
				entry.AuthHeader = "authorization-bearer"
			}
		}
		if idx >= 0 {
			old := cfg.Accounts[idx]
			entry.ID, entry.AddedAt, entry.Extra = old.ID, old.AddedAt, old.Extra
			cfg.Accounts[idx] = entry
		} else {
			cfg.Accounts = append(cfg.Accounts, entry)
		}
		id = entry.ID
		s := &record.AccountState{LastUsed: epochMs(now)}
		if prev := st.Accounts[id]; prev != nil {
			s.Extra = prev.Extra
		}
		if spec.Type == record.AccountOAuth {
			lineage, err := e.newUUID()
			if err != nil {
				return err
			}
			s.AuthLineageID = lineage
			s.Access, s.Refresh, s.Expires = spec.Access, secret.Secret(strings.TrimSpace(string(spec.Refresh))), spec.Expires
			s.LastRefreshedAt = epochMs(now)
		} else {
			s.APIKey = secret.Secret(strings.TrimSpace(string(spec.APIKey)))
		}
		st.Accounts[id] = s
		return nil
	})
	if err != nil {
		return AccountView{}, err
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{id}})
	return e.viewOf(snap, id)
}

// RemoveAccount removes a fallback account and its state.
func (e *Engine) RemoveAccount(ctx context.Context, id string) error {
	var removed string
	_, err := e.store.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
		for i, a := range cfg.Accounts {
			if a.ID == id || (id != "" && a.Label == id) {
				removed = a.ID
				cfg.Accounts = append(cfg.Accounts[:i], cfg.Accounts[i+1:]...)
				delete(st.Accounts, removed)
				return nil
			}
		}
		return errorf(ErrNoAccount, "%q", id)
	})
	if err != nil {
		return err
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{removed}})
	return nil
}

// UpdateAccount changes label, enabled, position or API route settings.
func (e *Engine) UpdateAccount(ctx context.Context, p AccountPatch) (AccountView, error) {
	var id string
	snap, err := e.store.UpdateConfig(ctx, func(cfg *record.ConfigFile, st *record.StateFile) error {
		idx := -1
		for i, a := range cfg.Accounts {
			if a.ID == p.ID || (p.ID != "" && a.Label == p.ID) {
				idx = i
				break
			}
		}
		if idx < 0 {
			return errorf(ErrNoAccount, "%q", p.ID)
		}
		a := cfg.Accounts[idx]
		id = a.ID
		if p.Label != nil {
			a.Label = strings.TrimSpace(*p.Label)
		}
		if p.Enabled != nil {
			v := *p.Enabled
			a.Enabled = &v
		}
		if p.BaseURL != nil || p.AuthHeader != nil || p.APIKey != nil {
			if a.Type != record.AccountAPI {
				return errorf(ErrConfigInvalid, "fields baseURL/authHeader/apiKey apply only to API-key routes")
			}
			spec := AccountSpec{Type: record.AccountAPI, BaseURL: a.BaseURL, AuthHeader: a.AuthHeader, APIKey: "x"}
			if p.BaseURL != nil {
				spec.BaseURL = *p.BaseURL
			}
			if p.AuthHeader != nil {
				spec.AuthHeader = *p.AuthHeader
			}
			if p.APIKey != nil {
				spec.APIKey = *p.APIKey
			}
			if err := validateSpec(&spec); err != nil {
				return err
			}
			a.BaseURL, a.AuthHeader = strings.TrimSpace(spec.BaseURL), spec.AuthHeader
			if p.APIKey != nil {
				s := st.Accounts[id]
				if s == nil {
					s = &record.AccountState{}
					st.Accounts[id] = s
				}
				s.APIKey = secret.Secret(strings.TrimSpace(string(*p.APIKey)))
			}
		}
		cfg.Accounts[idx] = a
		if p.Position != nil {
			pos := *p.Position
			if pos < 0 || pos >= len(cfg.Accounts) {
				return errorf(ErrConfigInvalid, "field position: must be between 0 and %d", len(cfg.Accounts)-1)
			}
			cfg.Accounts = append(cfg.Accounts[:idx], cfg.Accounts[idx+1:]...)
			cfg.Accounts = append(cfg.Accounts[:pos], append([]record.AccountConfig{a}, cfg.Accounts[pos:]...)...)
		}
		return nil
	})
	if err != nil {
		return AccountView{}, err
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{id}})
	return e.viewOf(snap, id)
}

// SetMain hands over the host's main credentials. The main account id is
// minted in the config once, if missing, so backoffs have a stable identity.
func (e *Engine) SetMain(ctx context.Context, c MainCredentials) (AccountView, error) {
	if strings.TrimSpace(string(c.Refresh)) == "" && strings.TrimSpace(string(c.Access)) == "" {
		return AccountView{}, errorf(ErrConfigInvalid, "field access or refresh: main credentials are empty")
	}
	snap, err := e.store.Load(ctx)
	if err != nil {
		return AccountView{}, err
	}
	if snap.Config == nil || snap.Config.MainAccountID == "" {
		id, err := e.newUUID()
		if err != nil {
			return AccountView{}, err
		}
		if snap, err = e.store.UpdateConfig(ctx, func(cfg *record.ConfigFile, _ *record.StateFile) error {
			if cfg.MainAccountID == "" {
				cfg.MainAccountID = id
			}
			return nil
		}); err != nil {
			return AccountView{}, err
		}
	}
	prev, hadPrev := e.mainCredentials()
	e.setMainCredentials(c)
	if rec := snap.Main.LastRefreshError; rec != nil && c.Refresh != "" && staleForToken(rec, prev, hadPrev, c.Refresh) {
		// A new refresh token (a re-login or a rotation by the host) retires
		// the refresh error of the old one, with a tombstone so another
		// process holding the old record does not write it back.
		now := epochMs(e.now())
		if snap, err = e.store.UpdateState(ctx, func(st *record.StateFile) error {
			m := ensureMain(st)
			if m.LastRefreshError != nil && staleForToken(m.LastRefreshError, prev, hadPrev, c.Refresh) {
				m.LastRefreshError, m.RefreshErrorClearedAt = nil, now
			}
			return nil
		}); err != nil {
			return AccountView{}, err
		}
	}
	if snap.Settings.QuotaRouting && c.Access != "" && (!hadPrev || prev.Access != c.Access) {
		// A new access token may belong to another Claude account (the
		// host switched main accounts): ask the profile now rather than at
		// the next poll, so main's cached quota and quota backoff of the
		// old account are dropped before they are used (BEHAVIOUR.md §3.7).
		// Only when main's quota is polled at all; best effort: a failure
		// is remembered (profileRetryAfter) and the poll asks again.
		if _, settled := mainQuotaIdentity(snap, c.Access, e.now()); !settled {
			if _, err := e.bindMainQuota(ctx, snap, mainAccount(snap, c, e)); err != nil {
				e.log.Warn("main account profile not checked at accounts/setMain; the next quota poll checks it", "err", err)
			} else if snap, err = e.store.Load(ctx); err != nil {
				return AccountView{}, err
			}
		}
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{MainAccountID}})
	return e.mainView(snap, e.now()), nil
}

// staleForToken reports whether a main refresh error belongs to a refresh
// token other than next: its fingerprint says so, or (for records without
// one) the host replaced the token this process was using.
func staleForToken(rec *record.OpError, prev MainCredentials, hadPrev bool, next secret.Secret) bool {
	if rec.RefreshTokenFingerprint != "" {
		return rec.RefreshTokenFingerprint != next.Fingerprint()
	}
	return hadPrev && prev.Refresh != "" && prev.Refresh != next
}

// RefreshAccount forces one token refresh of an account ("main" allowed).
// An active refresh backoff still refuses it; ResetBackoff clears that.
func (e *Engine) RefreshAccount(ctx context.Context, id string) (AccountView, error) {
	a, err := e.refresh(ctx, id, true, false)
	if err != nil {
		return AccountView{}, err
	}
	return e.GetAccount(ctx, a.id)
}

// ResetBackoff clears an account's refresh and quota backoff.
func (e *Engine) ResetBackoff(ctx context.Context, id string) (AccountView, error) {
	now := epochMs(e.now())
	snap, err := e.store.Load(ctx)
	if err != nil {
		return AccountView{}, err
	}
	target := MainAccountID
	if id != MainAccountID {
		a, ok := snap.Account(id)
		if !ok {
			return AccountView{}, errorf(ErrNoAccount, "%q", id)
		}
		target = a.ID
	}
	snap, err = e.store.UpdateState(ctx, func(st *record.StateFile) error {
		if target == MainAccountID {
			m := ensureMain(st)
			if m.LastRefreshError != nil {
				m.LastRefreshError, m.RefreshErrorClearedAt = nil, now
			}
			if m.LastQuotaAPIError != nil {
				m.LastQuotaAPIError, m.QuotaErrorClearedAt = nil, now
				m.QuotaErrorGeneration++
			}
			return nil
		}
		if s := st.Accounts[target]; s != nil {
			s.LastRefreshError, s.LastQuotaRefreshError = nil, nil
		}
		return nil
	})
	if err != nil {
		return AccountView{}, err
	}
	e.emit(Event{Kind: EventAccountsChanged, Accounts: []string{target}})
	return e.viewOf(snap, target)
}

// Quota returns the accounts' views with their snapshots; id "" means all.
func (e *Engine) Quota(ctx context.Context, id string) ([]AccountView, error) {
	if id == "" {
		return e.ListAccounts(ctx)
	}
	v, err := e.GetAccount(ctx, id)
	if err != nil {
		return nil, err
	}
	return []AccountView{v}, nil
}

// RefreshQuota fetches an account's quota now, honouring its backoff. As
// upstream's quota manager does, it answers with the cached snapshot,
// marked Fetched false, when the account's quota is backed off or another
// process is polling it; with nothing cached, the backoff is the error.
func (e *Engine) RefreshQuota(ctx context.Context, id string) (AccountView, error) {
	target := id
	if id != MainAccountID {
		snap, err := e.store.Load(ctx)
		if err != nil {
			return AccountView{}, err
		}
		a, ok := snap.Account(id)
		if !ok {
			return AccountView{}, errorf(ErrNoAccount, "%q", id)
		}
		target = a.ID
	}
	_, fetched, err := e.pollQuota(ctx, target)
	if err != nil && !errors.Is(err, ErrQuotaBackoff) {
		return AccountView{}, err
	}
	v, verr := e.GetAccount(ctx, target)
	if verr != nil {
		return AccountView{}, verr
	}
	if err != nil && v.Quota == nil {
		return AccountView{}, err
	}
	v.Fetched = &fetched
	return v, nil
}

// ObserveHeaders harvests anthropic-ratelimit-unified-* headers of a
// response served by id into its quota snapshot.
func (e *Engine) ObserveHeaders(ctx context.Context, id string, h http.Header) (AccountView, error) {
	if _, err := e.observeHeaders(ctx, id, h, false, false, false); err != nil {
		return AccountView{}, err
	}
	return e.GetAccount(ctx, id)
}

// settingsKeys are the config keys config/get shows and config/update may
// change; everything else in the file is left alone.
var settingsKeys = []string{"routing", "fallbackOn", "refresh", "quota", "killswitch", "plugins"}

// Config returns the settings sections of the config file.
func (e *Engine) Config(ctx context.Context) (map[string]json.RawMessage, error) {
	snap, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]json.RawMessage{}
	if snap.Config != nil {
		for _, k := range settingsKeys {
			if raw, ok := snap.Config.Extra[k]; ok {
				out[k] = raw
			}
		}
	}
	return out, nil
}

// UpdateConfig merges top-level settings keys into the config file. A null
// value removes the key. The result must still parse, or nothing is written.
func (e *Engine) UpdateConfig(ctx context.Context, patch map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	allowed := map[string]bool{}
	for _, k := range settingsKeys {
		allowed[k] = true
	}
	for k := range patch {
		if !allowed[k] {
			return nil, errorf(ErrConfigInvalid, "field %s: not a setting (allowed: %s)", k, strings.Join(settingsKeys, ", "))
		}
	}
	_, err := e.store.UpdateConfig(ctx, func(cfg *record.ConfigFile, _ *record.StateFile) error {
		if cfg.Extra == nil {
			cfg.Extra = record.Extra{}
		}
		for k, v := range patch {
			if string(v) == "null" {
				delete(cfg.Extra, k)
			} else {
				cfg.Extra[k] = v
			}
		}
		_, err := parseSettingsStrict(cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.emit(Event{Kind: EventAccountsChanged})
	return e.Config(ctx)
}

// newUUID returns a random version 4 UUID from the engine's random source.
func (e *Engine) newUUID() (string, error) {
	var b [16]byte
	if _, err := e.rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
