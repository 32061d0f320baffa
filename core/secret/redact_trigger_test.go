package secret

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRedactTriggersMissNothing: the cheap triggers that skip a pattern
// never skip one that would have matched; Redact equals running every
// pattern unconditionally.
func TestRedactTriggersMissNothing(t *testing.T) {
	inputs := []string{
		"BEARER abc.def", "Authorization: bEaReR tok", "sk-ant-oat01-xyz", "key SK-ANT-abc",
		"eyJhbGciOi.eyJzdWIi.sig", `{"ACCESS_TOKEN" : "a"}`, `{"Code":"c"}`, `{"apiKey":"k"}`,
		"REFRESH_TOKEN=abc&x=1", "Code_Verifier=v", "access_token=", "plain text", "",
		"_token= spaced", `{"token":""}`, "x=1&access_token=t",
	}
	for _, in := range inputs {
		want := in
		for _, p := range redactPatterns {
			want = p.re.ReplaceAllStringFunc(want, redactMatch)
		}
		assert.Equal(t, want, Redact(in), "input %q", in)
	}
}
