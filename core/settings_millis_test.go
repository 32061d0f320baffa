package core

import (
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/record"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSettings_minuteFieldsAreRangeChecked(t *testing.T) {
	cases := []struct {
		name    string
		extra   string
		key     string
		refresh time.Duration
		quota   time.Duration
	}{
		{name: "refresh in range", extra: `{"refresh":{"refreshBeforeExpiryMinutes":300}}`, refresh: 300 * time.Minute, quota: 5 * time.Minute},
		{name: "quota in range", extra: `{"quota":{"checkIntervalMinutes":2.5}}`, refresh: 240 * time.Minute, quota: 150 * time.Second},
		{name: "refresh at the largest duration", extra: `{"refresh":{"refreshBeforeExpiryMinutes":153722867}}`, refresh: 153722867 * time.Minute, quota: 5 * time.Minute},
		{name: "refresh overflows", extra: `{"refresh":{"refreshBeforeExpiryMinutes":153722868}}`, key: "refresh.refreshBeforeExpiryMinutes"},
		{name: "refresh far out of range", extra: `{"refresh":{"refreshBeforeExpiryMinutes":1e300}}`, key: "refresh.refreshBeforeExpiryMinutes"},
		{name: "quota overflows", extra: `{"quota":{"checkIntervalMinutes":9223372036855}}`, key: "quota.checkIntervalMinutes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var x record.Extra
			require.NoError(t, json.Unmarshal([]byte(tc.extra), &x))
			s, err := parseSettingsStrict(&record.ConfigFile{Extra: x})
			if tc.key != "" {
				require.ErrorIs(t, err, ErrConfigInvalid)
				assert.Contains(t, err.Error(), tc.key)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.refresh, s.RefreshBeforeExpiry)
			assert.Equal(t, tc.quota, s.QuotaCheckInterval)
			assert.Positive(t, s.RefreshBeforeExpiry)
		})
	}
}
