package pgstore

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/internal/pgtest"
)

// TestWarnings_nameTheStore: a wrong-typed value read from the database is
// reported with the store's name (password redacted) and the part of it,
// never with this machine's file paths, which were not read.
func TestWarnings_nameTheStore(t *testing.T) {
	ctx := ctxT(t)
	u, err := url.Parse(pgtest.DB(t))
	require.NoError(t, err)
	u.User = url.UserPassword("acctpool", "s3cret-pw")
	conn := u.String() // a password the server ignores (trust auth), to see it redacted
	keys := testKeys(t)
	m := newMachine(t, conn, keys, "laptop", "http://127.0.0.1:1/token")
	_, err = m.eng.AddAccount(ctx, core.AccountSpec{ID: "fb", Type: record.AccountOAuth, Refresh: "rt-1"})
	require.NoError(t, err)
	// Values of the wrong type, as a hand edit of the rows would leave them.
	pg := openStore(t, conn, keys, "editor")
	_, err = pg.pool.Exec(ctx, `UPDATE acctpool_account SET doc = jsonb_set(doc, '{addedAt}', '"yesterday"') WHERE id = 'fb'`)
	require.NoError(t, err)
	_, err = pg.pool.Exec(ctx, `UPDATE acctpool_account_state SET doc = jsonb_set(doc, '{lastUsed}', '"now"') WHERE account_id = 'fb'`)
	require.NoError(t, err)

	ws, err := m.eng.Warnings(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 2, "one wrong-typed value in each part: %v", ws)
	byPath := map[string]core.Warning{}
	for _, w := range ws {
		byPath[w.Path] = w
		assert.NotContains(t, w.String(), "s3cret-pw", "the password is redacted")
		assert.NotContains(t, w.String(), ".json", "no file is named")
		assert.True(t, strings.HasPrefix(w.File, "postgres postgres://"), "the store is named: %s", w.File)
	}
	assert.Contains(t, byPath["accounts[0].addedAt"].File, "(configuration)")
	assert.Contains(t, byPath["accounts.fb.lastUsed"].File, "(account state)")
}
