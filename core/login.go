package core

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/acctpool/acctpool/core/internal/anthropic"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

// loginTTL is how long a started login may be finished.
const loginTTL = 10 * time.Minute

// pendingLogin is a started PKCE login awaiting its authorization code.
type pendingLogin struct {
	verifier string
	expires  time.Time
}

func (e *Engine) randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := e.rand.Read(b); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LoginStart begins an OAuth PKCE login for a new fallback account: it
// returns the authorize URL (S256 challenge, random state) for the user to
// open. mode "console" uses the console authorize URL; anything else Max.
func (e *Engine) LoginStart(ctx context.Context, mode string) (LoginStart, error) {
	verifier, err := e.randomToken(32)
	if err != nil {
		return LoginStart{}, err
	}
	state, err := e.randomToken(32)
	if err != nil {
		return LoginStart{}, err
	}
	authorize := e.ep.Authorize
	if mode == "console" && authorize == defaultAuthorizeURL {
		authorize = "https://platform.claude.com/oauth/authorize"
	}
	now := e.now()
	e.loginMu.Lock()
	for k, p := range e.logins {
		if now.After(p.expires) {
			delete(e.logins, k)
		}
	}
	e.logins[state] = pendingLogin{verifier: verifier, expires: now.Add(loginTTL)}
	e.loginMu.Unlock()
	return LoginStart{URL: anthropic.AuthorizeURL(authorize, e.ep.Redirect, verifier, state), State: state, RedirectURI: e.ep.Redirect, ExpiresAt: epochMs(now.Add(loginTTL))}, nil
}

// LoginFinish exchanges the authorization code of a started login and adds
// the account. The code may carry its state as "code#state", as Claude's
// callback page shows it.
func (e *Engine) LoginFinish(ctx context.Context, code, state, label string) (AccountView, error) {
	c, err := e.exchangeLogin(ctx, code, state, label)
	if err != nil {
		return AccountView{}, err
	}
	return e.AddAccount(ctx, AccountSpec{Label: label, Type: record.AccountOAuth, Access: c.Access, Refresh: c.Refresh, Expires: c.Expires})
}

// LoginFinishMain exchanges the authorization code of a started login and
// makes the account the host's main account, for a host whose own login
// runs through acctpool (the OpenCode and Pi plugins). The host owns main's
// credential (BEHAVIOUR.md §6), so the new pair goes to it the way a
// rotation does, as EventMainRefreshed; the returned view, like every
// view, carries no token.
func (e *Engine) LoginFinishMain(ctx context.Context, code, state string) (AccountView, error) {
	c, err := e.exchangeLogin(ctx, code, state, "main")
	if err != nil {
		return AccountView{}, err
	}
	v, err := e.SetMain(ctx, c)
	if err != nil {
		return AccountView{}, err
	}
	e.emit(Event{Kind: EventMainRefreshed, Accounts: []string{MainAccountID}, Main: &c})
	return v, nil
}

// exchangeLogin trades a started login's code for the account's tokens.
func (e *Engine) exchangeLogin(ctx context.Context, code, state, label string) (MainCredentials, error) {
	code = strings.TrimSpace(code)
	if c, s, ok := strings.Cut(code, "#"); ok {
		code = c
		if state == "" {
			state = s
		}
	}
	if code == "" {
		return MainCredentials{}, errorf(ErrConfigInvalid, "field code: empty authorization code")
	}
	e.loginMu.Lock()
	p, ok := e.logins[state]
	if ok {
		delete(e.logins, state)
	}
	e.loginMu.Unlock()
	if !ok || e.now().After(p.expires) {
		return MainCredentials{}, ErrLoginState
	}
	grant, failure, err := e.api.Exchange(ctx, code, state, e.ep.Redirect, p.verifier)
	if err != nil {
		return MainCredentials{}, err
	}
	if failure != nil {
		return MainCredentials{}, upstreamError(label, *failure, e.Classify(ctx, *failure), time.Time{})
	}
	now := e.now()
	return MainCredentials{
		Access:  secret.Secret(grant.AccessToken),
		Refresh: secret.Secret(grant.RefreshToken),
		Expires: epochMs(now.Add(time.Duration(grant.ExpiresIn * float64(time.Second)))),
	}, nil
}
