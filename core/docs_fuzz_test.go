package core

import (
	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"os"
	"testing"

	"github.com/acctpool/acctpool/core/internal/jsonscan"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzStateDecode: on a state file that goccy/go-json reads into the
// plain structs (every value of the right type) and that holds no key
// acctpool keeps aside (no unknown, duplicate or differently cased key),
// the one-pass decoder reads the same values, and the encoder writes
// what goccy/go-json writes of them, byte for byte.
func FuzzStateDecode(f *testing.F) {
	for _, in := range docEdgeCases {
		if in.kind == "state" {
			f.Add(in.data)
		}
	}
	s := benchStoreN(f, 2)
	raw, err := readFileBytes(s.Paths().State)
	require.NoError(f, err)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, data []byte) {
		var want plainState
		if json.Unmarshal(data, &want) != nil || hasDuplicateKeys(data) {
			return
		}
		var st record.StateFile
		require.NoError(t, st.UnmarshalJSON(data), "goccy read it: %q", data)
		if stateHasExtra(&st) {
			return
		}
		out, err := filestore.Encode(&st)
		require.NoError(t, err)
		var got plainState
		require.NoError(t, json.Unmarshal(out, &got))
		if want.Accounts == nil {
			want.Accounts = map[string]*plainAccountState{} // written as {}
		}
		// What goccy would write of its reading (omitempty drops empty
		// values), read back: the same normal form as got.
		plainOut, err := json.MarshalIndent(&want, "", "  ")
		require.NoError(t, err)
		var norm plainState
		require.NoError(t, json.Unmarshal(plainOut, &norm))
		assert.Equal(t, norm, got, "input %q", data)
		assert.Equal(t, string(plainOut)+"\n", string(out), "the encoder writes what goccy writes, input %q", data)
	})
}

func readFileBytes(path string) ([]byte, error) { return os.ReadFile(path) }

// hasDuplicateKeys reports whether any object in data (valid JSON) has a
// key twice, or two keys equal but for case.
func hasDuplicateKeys(data []byte) bool {
	s := jsonscan.New(data)
	dup := false
	var walk func() error
	walk = func() error {
		switch s.Peek() {
		case jsonscan.Object:
			seen := map[string]bool{}
			return s.Object(func(key []byte) error {
				k := string(foldKey(key))
				dup = dup || seen[k]
				seen[k] = true
				return walk()
			})
		case jsonscan.Array:
			return s.Array(walk)
		}
		return s.Skip()
	}
	return walk() != nil || dup
}

func foldKey(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func stateHasExtra(st *record.StateFile) bool {
	if st.Extra != nil {
		return true
	}
	quota := func(q *record.QuotaSnapshot) bool { return q != nil && q.WithoutExtra() != q } // a copy only when something inside keeps unknown keys
	opErr := func(e *record.OpError) bool { return e != nil && e.Extra != nil }
	spent := func(w *record.SpentWindows) bool { return w != nil && w.Extra != nil }
	if m := st.Main; m != nil && (m.Extra != nil || quota(m.Quota) || opErr(m.LastQuotaAPIError) || opErr(m.LastRefreshError) || spent(m.RateLimited)) {
		return true
	}
	for _, a := range st.Accounts {
		if a != nil && (a.Extra != nil || quota(a.Quota) || opErr(a.LastRefreshError) || opErr(a.LastQuotaRefreshError) || spent(a.RateLimited)) {
			return true
		}
	}
	return false
}

// FuzzConfigDecode is FuzzStateDecode for the config file.
func FuzzConfigDecode(f *testing.F) {
	for _, in := range docEdgeCases {
		if in.kind == "config" {
			f.Add(in.data)
		}
	}
	f.Add([]byte(`{"version":1,"mainAccountId":"m","main":{"a":[1,{"b":"<"}]},"accounts":[{"id":"a","label":"A","type":"oauth","enabled":false,"addedAt":5},{"id":"k","type":"api","baseURL":"https://x","authHeader":"x-api-key"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var want plainConfig
		if json.Unmarshal(data, &want) != nil || hasDuplicateKeys(data) {
			return
		}
		var c record.ConfigFile
		require.NoError(t, c.UnmarshalJSON(data), "goccy read it: %q", data)
		if c.Extra != nil {
			return
		}
		for _, a := range c.Accounts {
			if a.Extra != nil {
				return
			}
		}
		out, err := filestore.Encode(&c)
		require.NoError(t, err)
		if want.Accounts == nil {
			want.Accounts = []plainAccount{} // written as []
		}
		plainOut, err := json.MarshalIndent(&want, "", "  ")
		require.NoError(t, err)
		assert.Equal(t, string(plainOut)+"\n", string(out), "input %q", data)
	})
}
