package plugins

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/verdict"
)

// TestManifestMillisRange: every millisecond limit is range-checked before
// it becomes a duration. A value that used to wrap around (a negative or
// tiny deadline listed as active) is a rejected manifest whose message
// names the field and the accepted range.
func TestManifestMillisRange(t *testing.T) {
	cases := []struct {
		limits string
		err    string // "" = accepted
	}{
		{`{"callTimeoutMs":9223372036855}`, "limits.callTimeoutMs: 9223372036855 ms is out of range (0..1000); 0 means 50 ms"},
		{`{"callTimeoutMs":18446744073710}`, "limits.callTimeoutMs: 18446744073710 ms is out of range (0..1000)"},
		{`{"callTimeoutMs":1001}`, "limits.callTimeoutMs: 1001 ms is out of range (0..1000)"},
		{`{"callTimeoutMs":-1}`, "limits.callTimeoutMs: -1 ms is out of range (0..1000)"},
		{`{"initTimeoutMs":9223372036855}`, "limits.initTimeoutMs: 9223372036855 ms is out of range (0..2000); 0 means 2000 ms"},
		{`{"initTimeoutMs":9223372036854775807}`, "limits.initTimeoutMs: 9223372036854775807 ms is out of range (0..2000)"},
		{`{"initTimeoutMs":-9223372036854775808}`, "limits.initTimeoutMs: -9223372036854775808 ms is out of range (0..2000)"},
		{`{"maxInputBytes":-1}`, "limits.maxInputBytes: -1 is out of range (0..65536"},
		{`{"recycleAfter":10001}`, "limits.recycleAfter: 10001 is out of range (0..10000"},
		{`{"memoryPages":513}`, "limits.memoryPages: 513 is out of range (0..512"},
		{`{"callTimeoutMs":1000,"initTimeoutMs":2000}`, ""},
		{`{"callTimeoutMs":0}`, ""},
	}
	ok := fixture(t, "ok")
	for _, tc := range cases {
		t.Run(tc.limits, func(t *testing.T) {
			raw := fmt.Sprintf(`{"id":"ms","version":"1","abi":1,"wasm":%q,"sha256":%q,"limits":%s}`, ok.Wasm, ok.SHA256, tc.limits)
			m, err := ParseManifest([]byte(raw))
			if tc.err == "" {
				require.NoError(t, err)
				eff, err := m.Limits.effective()
				require.NoError(t, err)
				assert.Positive(t, eff.CallTimeout)
				assert.LessOrEqual(t, eff.CallTimeout, MaxCallTimeout)
				assert.Positive(t, eff.InitTimeout)
				assert.LessOrEqual(t, eff.InitTimeout, MaxInitTimeout)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.err)
			assert.Contains(t, err.Error(), "plugin ms:", "the message names the plugin")

			// A host given the manifest lists it as rejected with the same
			// message, never as active.
			h := newHost(t, nil, m)
			s := statusOf(t, h, "ms")
			assert.Equal(t, StateRejected, s.State)
			assert.Contains(t, s.Error, tc.err)
		})
	}
}

// TestLimitsFromGoRejectNegative: limits built in Go (not parsed) are
// checked too: a negative deadline is a load error, not a plugin whose
// every call faults.
func TestLimitsFromGoRejectNegative(t *testing.T) {
	m := fixture(t, "ok")
	m.Limits.CallTimeout = -1
	h := newHost(t, nil, m)
	s := statusOf(t, h, "ok")
	assert.Equal(t, StateRejected, s.State)
	assert.Contains(t, s.Error, "limits.callTimeoutMs")

	m = fixture(t, "ok")
	m.Limits.InitTimeout = -1
	h = newHost(t, nil, m)
	s = statusOf(t, h, "ok")
	assert.Equal(t, StateRejected, s.State)
	assert.Contains(t, s.Error, "limits.initTimeoutMs")
}

// TestPluginRetryAfterOverflowIsBadOutput: a guest's retryAfterMs that
// overflows a duration is a bad_output fault and the built-in verdict
// stands, never a 0.448 ms backoff.
func TestPluginRetryAfterOverflowIsBadOutput(t *testing.T) {
	h := newHost(t, nil, fixture(t, "bigretry"))
	f := failure(429)
	v := h.Classify(t.Context(), f)
	assert.Equal(t, verdict.ClassifyBuiltin(f), v)
	s := statusOf(t, h, "bigretry")
	assert.Equal(t, map[FaultKind]int64{FaultBadOutput: 1}, s.Faults)
	assert.Contains(t, s.LastError, "bad_output: bad output: retryAfterMs: 18446744073710 ms is out of range (0..86400000)")
}
