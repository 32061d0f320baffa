package core

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	json "github.com/goccy/go-json"
)

// profileTTL is how long a fetched profile is trusted (upstream's
// PROFILE_TTL_MS).
const profileTTL = 7 * 24 * time.Hour

// profileRetryAfter is how long a failed profile fetch is remembered for
// its access token: main's quota polls in that time stay bound to
// mainAccountId without asking the profile endpoint again, so a failing
// endpoint is hit at most once per 10 minutes per process, not on every
// poll (BEHAVIOUR.md §3.7). A new access token (a rotation, a switch of
// the host's main account) is asked at once.
const profileRetryAfter = 10 * time.Minute

// profileMiss remembers the last failed profile fetch: the fingerprint of
// the access token it was for and until when it stands. It lives in memory
// only; a restarted process asks again.
type profileMiss struct {
	mu          sync.Mutex
	fingerprint string
	until       time.Time
}

// backedOff reports whether a fetch for the token fingerprint fp failed
// less than profileRetryAfter ago.
func (m *profileMiss) backedOff(fp string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fingerprint == fp && now.Before(m.until)
}

// record notes a failed fetch for fp at now; ok clears it.
func (m *profileMiss) record(fp string, now time.Time, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ok {
		m.fingerprint, m.until = "", time.Time{}
		return
	}
	m.fingerprint, m.until = fp, now.Add(profileRetryAfter)
}

// accountProfile is the state file's main.profile in upstream's
// OAuthAccountProfile shape (BEHAVIOUR.md §3.7): the Claude account the
// main access token belongs to, its tier and organisation type.
type accountProfile struct {
	Tier                string `json:"tier"`
	OrgType             string `json:"orgType"`
	CheckedAt           int64  `json:"checkedAt"`
	AccountIdentity     string `json:"accountIdentity,omitempty"`
	ProviderAccountUUID string `json:"providerAccountUuid,omitempty"`
	TokenFingerprint    string `json:"tokenFingerprint,omitempty"`
}

// storedProfile reads main.profile; nil when absent or not a profile.
func storedProfile(m *record.MainState) *accountProfile {
	if m == nil || len(m.Profile) == 0 {
		return nil
	}
	var p accountProfile
	if err := record.DecodeLenient(m.Profile, &p); err != nil {
		return nil
	}
	return &p
}

// oauthAccessToken reports whether access is a Claude OAuth access token,
// the only kind the profile endpoint can resolve to an account.
func oauthAccessToken(access secret.Secret) bool {
	return strings.HasPrefix(access.Reveal(), "sk-ant-oat")
}

// mainQuotaIdentity is what main's quota snapshot and quota backoff are
// bound to (BEHAVIOUR.md §3.7): the Claude account UUID of the access
// token, from a profile fetched for that token less than 7 days ago; else
// mainAccountId. ok is false when a profile would settle it.
func mainQuotaIdentity(snap *Snapshot, access secret.Secret, now time.Time) (id string, ok bool) {
	if !oauthAccessToken(access) {
		return mainIdentity(snap), true
	}
	p := storedProfile(snap.Main)
	if p == nil || p.ProviderAccountUUID == "" || p.TokenFingerprint != access.Fingerprint() ||
		now.Sub(fromMs(p.CheckedAt)) >= profileTTL {
		return mainIdentity(snap), false
	}
	return p.ProviderAccountUUID, true
}

// fetchProfile asks the profile endpoint which account access belongs to.
func (e *Engine) fetchProfile(ctx context.Context, access secret.Secret) (*accountProfile, error) {
	p, err := e.api.Profile(ctx, access)
	if err != nil {
		return nil, err
	}
	return &accountProfile{
		Tier: p.Tier, OrgType: p.OrgType,
		ProviderAccountUUID: p.AccountUUID, TokenFingerprint: access.Fingerprint(),
	}, nil
}

// bindMainQuota settles main's quota identity before a poll: with no
// profile for the current access token it fetches one and stores it.
// When the profile names another account than the stored one, the host
// switched main accounts: main's cached quota, its quota backoff and its
// spent windows belonged to the old account and are dropped. A profile
// that cannot be had leaves the identity at mainAccountId (logged), and
// is not asked for again for the same token for profileRetryAfter.
func (e *Engine) bindMainQuota(ctx context.Context, snap *Snapshot, a oauthAccount) (oauthAccount, error) {
	now := e.now()
	if _, ok := mainQuotaIdentity(snap, a.tokens.Access, now); ok {
		return a, nil
	}
	fp := a.tokens.Access.Fingerprint()
	if e.profileMiss.backedOff(fp, now) {
		return a, nil
	}
	p, err := e.fetchProfile(ctx, a.tokens.Access)
	if err != nil {
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		e.profileMiss.record(fp, now, false)
		e.log.Warn("main account profile unavailable; main quota stays bound to mainAccountId", "err", err, "retryAfter", profileRetryAfter)
		return a, nil
	}
	e.profileMiss.record(fp, now, true)
	p.CheckedAt = epochMs(now)
	p.AccountIdentity = mainIdentity(snap)
	raw, err := json.Marshal(p)
	if err != nil {
		return a, err
	}
	switched := false
	snap, err = e.store.UpdateState(ctx, func(st *record.StateFile) error {
		m := ensureMain(st)
		old := storedProfile(m)
		m.Profile = raw
		switched = old != nil && old.ProviderAccountUUID != "" && old.ProviderAccountUUID != p.ProviderAccountUUID
		if switched {
			m.Quota, m.QuotaCheckedAt, m.QuotaToken = nil, 0, ""
			if m.LastQuotaAPIError != nil {
				m.LastQuotaAPIError, m.QuotaErrorClearedAt = nil, epochMs(now)
			}
			m.QuotaErrorGeneration++
			m.RateLimited = nil
		}
		return nil
	})
	if err != nil {
		return a, fmt.Errorf("persist main profile: %w", err)
	}
	if switched {
		e.log.Info("host switched main accounts; main quota and quota backoff reset")
		e.emit(Event{Kind: EventQuotaChanged, Accounts: []string{MainAccountID}})
	}
	a.quotaIdentity = p.ProviderAccountUUID
	a.quotaErr = snap.Main.LastQuotaAPIError
	a.quota = mainQuota(snap)
	return a, nil
}

// rebindProfile moves main's profile to the access token a rotation by
// acctpool just produced: the account is the same, only the token is new.
func rebindProfile(m *record.MainState, used, next secret.Secret) {
	p := storedProfile(m)
	if p == nil || p.TokenFingerprint != used.Fingerprint() {
		return
	}
	p.TokenFingerprint = next.Fingerprint()
	if raw, err := json.Marshal(p); err == nil {
		m.Profile = raw
	}
}
