package core

import (
	"context"

	"github.com/acctpool/acctpool/core/secret"
)

// KnownSecrets returns every credential the engine knows of: the host's
// main access and refresh tokens and, for each stored account, its access
// token, refresh token and API key. Empty values are left out.
//
// # Notes
//
// It exists for text that leaves core's hands and may echo a credential
// without a recognisable shape: plugin inputs and everything a plugin
// emits pass through [secret.Redact] with this set (see plugins.Options). The
// accounts come from the engine's cached snapshot, so a call costs no
// file read in the steady state; when the files cannot be read, only the
// main tokens are returned.
func (e *Engine) KnownSecrets(ctx context.Context) []secret.Secret {
	var out []secret.Secret
	add := func(s secret.Secret) {
		if s != "" {
			out = append(out, s)
		}
	}
	if c, ok := e.mainCredentials(); ok {
		add(c.Access)
		add(c.Refresh)
	}
	snap, err := e.routeSnapshot(ctx)
	if err != nil {
		return out
	}
	for i := range snap.Accounts {
		st := &snap.Accounts[i].State
		add(st.Access)
		add(st.Refresh)
		add(st.APIKey)
	}
	return out
}
