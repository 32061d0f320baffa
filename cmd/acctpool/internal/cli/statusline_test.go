package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestStatusline(t *testing.T) {
	dir := copyFixture(t, "pool")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, "main 40%·7d ▸ fb1 71%·7d ▸ fb3 ✕ 1h02m ▸ 1 needs login\n"},
		{"ascii", []string{"--ascii"}, "main 40%/7d > fb1 71%/7d > fb3 x 1h02m > 1 needs login\n"},
		{"template", []string{"--format", "{next} {next_5h}%/{next_7d}% · {usable}/{total} ok · {relogin} login · {mode}{back} {unknown}"},
			"main 62%/40% · 3/5 ok · 1 login · main-first {unknown}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := call(Statusline, envFor(dir), "", append([]string{"--now", fixtureNow}, tc.args...)...)
			assert.Equal(t, exitOK, code, errOut)
			assert.Equal(t, tc.want, out)
		})
	}
	t.Run("none can serve", func(t *testing.T) {
		dir := writePool(t, `{"version":1,"quota":{"enabled":true},"killswitch":{"enabled":true},"accounts":[]}`,
			`{"version":1,"main":{"quota":{"five_hour":{"usedPercent":98,"remainingPercent":2,"resetsAt":"2026-01-01T11:00:00Z","checkedAt":1767261500000},"seven_day":{"usedPercent":10,"remainingPercent":90,"checkedAt":1767261500000}}},"accounts":{}}`)
		code, out, _ := call(Statusline, envFor(dir), "", "--now", fixtureNow, "--format", "{accounts} | {next} back in {back}")
		assert.Equal(t, exitNone, code)
		assert.Equal(t, "main ✕ 1h | none back in 1h\n", out)
	})
}
