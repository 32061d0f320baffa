package storeopen

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	const url = "postgres://acct:s3cret-pw@db.example/pool"
	cases := []struct {
		name, store, keyFile, host string
		want                       Spec
		err                        string
	}{
		{name: "default is the files", want: Spec{}},
		{name: "files by name", store: " files ", keyFile: "k", host: "h", want: Spec{}},
		{name: "postgres with key", store: url, keyFile: "/k", want: Spec{URL: url, KeyFile: "/k"}},
		{name: "postgresql scheme", store: "postgresql://db/pool", keyFile: "/k", want: Spec{URL: "postgresql://db/pool", KeyFile: "/k"}},
		{name: "host named", store: url, keyFile: "/k", host: " laptop ", want: Spec{URL: url, KeyFile: "/k", Host: "laptop"}},
		{name: "no key file", store: url, err: "needs --store-key-file"},
		{name: "unknown scheme", store: "mysql://u:s3cret-pw@db/x", keyFile: "/k", err: "want files or a postgres:// URL"},
		{name: "host with a control character", store: url, keyFile: "/k", host: "a\nb", err: "--store-host"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.store, tc.keyFile, tc.host)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				assert.NotContains(t, err.Error(), "s3cret-pw", "an error never repeats the password")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, tc.want.URL != "", got.Shared())
		})
	}
}
