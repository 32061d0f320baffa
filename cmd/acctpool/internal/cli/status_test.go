package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/schema/validate"
)

func TestStatusGolden(t *testing.T) {
	dir := copyFixture(t, "pool")
	for _, width := range []int{60, 100, 140} {
		for _, color := range []string{"never", "always"} {
			name := fmt.Sprintf("status-%s-%d.txt", map[string]string{"never": "plain", "always": "tty"}[color], width)
			t.Run(name, func(t *testing.T) {
				code, out, errOut := call(Status, envFor(dir), "", "--now", fixtureNow, "--width", fmt.Sprint(width), "--color", color)
				require.Empty(t, errOut)
				assert.Equal(t, exitOK, code)
				golden(t, name, out)
				if color == "never" {
					for _, line := range splitLines(out) {
						if !fixLine.MatchString(line) {
							assert.LessOrEqual(t, visibleLen(line), width, "line wider than %d: %q", width, line)
						}
						for _, r := range line {
							assert.Less(t, r, rune(128), "plain output must be ASCII: %q", line)
						}
					}
				}
			})
		}
	}
}

// fixLine is the one line allowed to overflow: a command the user copies
// whole, which holds a 36-character account id.
var fixLine = regexp.MustCompile(`^    acctpool login --replace \S+$`)

func TestStatusGoldenSparse(t *testing.T) {
	// Main without quota, a disabled fallback, one without a label whose
	// window has no reset and is an hour old, sticky-balanced with no
	// session held.
	dir := copyFixture(t, "sparse")
	code, out, errOut := call(Status, envFor(dir), "", "--now", fixtureNow, "--width", "80", "--color", "never")
	require.Empty(t, errOut)
	assert.Equal(t, exitOK, code)
	golden(t, "status-sparse-plain-80.txt", out)
}

func TestStatusJSONMatchesSchema(t *testing.T) {
	dir := copyFixture(t, "pool")
	code, out, errOut := call(Status, envFor(dir), "", "--now", fixtureNow, "--json")
	require.Empty(t, errOut)
	assert.Equal(t, exitOK, code)
	require.NoError(t, validate.ValidateCLIStatus([]byte(out)))
	require.Error(t, validate.ValidateCLIStatus([]byte(strings.Replace(out, `"canServe": true`, `"canServe": "yes"`, 1))),
		"the schema must reject a wrong type, or the check above proves nothing")
	for _, secret := range []string{"FIXTUREACCESS", "FIXTUREREFRESH", "FIXTUREKEY"} {
		assert.NotContains(t, out, secret)
	}

	var got statusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	ids := []string{}
	for _, v := range got.Accounts {
		ids = append(ids, v.ID)
	}
	assert.Equal(t, []string{"main", "5f0e2b1c-1111-4a0a-8c1d-0000000000f1", "7a9d4e2f-2222-4b0b-9d2e-0000000000f2",
		"9c8b7a6d-3333-4c0c-8e3f-0000000000f3", "work-key"}, ids, "main, OAuth fallbacks in order, API-key routes last")
	s := got.Summary
	assert.Equal(t, 5, s.Total)
	assert.Equal(t, 3, s.Usable)
	assert.True(t, s.CanServe)
	assert.Equal(t, "main-first", s.Mode)
	require.NotNil(t, s.Next)
	assert.Equal(t, "main", s.Next.AccountID)
	assert.Equal(t, 2, s.StickySessions, "the assignment unused for 8 days has expired")
	assert.Equal(t, map[string]int{"main": 1, "5f0e2b1c-1111-4a0a-8c1d-0000000000f1": 1}, s.StickyBy)
	require.Len(t, s.NeedsRelogin, 1)
	assert.Equal(t, statusRelogin{AccountID: "7a9d4e2f-2222-4b0b-9d2e-0000000000f2", Label: "fb2",
		Since: 1767261600000 - 2*3600*1000, Fix: "acctpool login --replace 7a9d4e2f-2222-4b0b-9d2e-0000000000f2"}, s.NeedsRelogin[0])
	assert.Equal(t, int64(1767261600000+62*60*1000), s.NextBackAt, "fb3 is back when its 5h window resets")
	assert.Contains(t, s.Thresholds, statusThreshold{AccountID: "main", Window: "5h", Kind: "min", Percent: 10})
	assert.Contains(t, s.Thresholds, statusThreshold{AccountID: "main", Window: "7d", Kind: "kill", Percent: 10})
}

// writePool writes a config and state into a new directory.
func writePool(t *testing.T, config, state string) string {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth.json"), []byte(config), 0o600))
	}
	if state != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "anthropic-auth-state.json"), []byte(state), 0o600))
	}
	return dir
}

func TestStatusExitStatus(t *testing.T) {
	spent := `{"version":1,"main":{"quota":{"five_hour":{"usedPercent":98,"remainingPercent":2,"resetsAt":"2026-01-01T11:00:00Z","checkedAt":1767261500000},` +
		`"seven_day":{"usedPercent":10,"remainingPercent":90,"checkedAt":1767261500000},"checkedAt":1767261500000}},"accounts":{}}`
	cases := []struct {
		name, config, state string
		want                int
		stdout, stderr      string
	}{
		{name: "no files: main alone, judged usable", want: exitOK, stdout: "1 of 1 accounts can serve"},
		{name: "main below its killswitch and no fallback", config: `{"version":1,"quota":{"enabled":true},"killswitch":{"enabled":true},"accounts":[]}`,
			state: spent, want: exitNone, stdout: "0 of 1 accounts can serve"},
		{name: "disabled fallback does not count", config: `{"version":1,"quota":{"enabled":true},"killswitch":{"enabled":true},"accounts":[{"id":"a","type":"oauth","enabled":false}]}`,
			state: spent, want: exitNone, stdout: "disabled"},
		{name: "corrupt config", config: `{"version":1,"accounts":[}`, want: exitUsage, stderr: "corrupt file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writePool(t, tc.config, tc.state)
			code, out, errOut := call(Status, envFor(dir), "", "--now", fixtureNow, "--color", "never")
			assert.Equal(t, tc.want, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			assert.Contains(t, out, tc.stdout)
			assert.Contains(t, errOut, tc.stderr)
		})
	}
	t.Run("none can serve, as JSON", func(t *testing.T) {
		dir := writePool(t, `{"version":1,"quota":{"enabled":true},"killswitch":{"enabled":true},"accounts":[]}`, spent)
		code, out, _ := call(Status, envFor(dir), "", "--now", fixtureNow, "--json")
		assert.Equal(t, exitNone, code)
		require.NoError(t, validate.ValidateCLIStatus([]byte(out)))
		var got statusJSON
		require.NoError(t, json.Unmarshal([]byte(out), &got))
		assert.Nil(t, got.Summary.Next)
		assert.False(t, got.Summary.CanServe)
		assert.Equal(t, int64(1767265200000), got.Summary.NextBackAt, "main is back when its 5h window resets")
		assert.Contains(t, out, `"next": null`)
	})
	t.Run("bad flag", func(t *testing.T) {
		code, _, errOut := call(Status, envFor(t.TempDir()), "", "--watch", "0.1s")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, "at least 1s")
	})
}

func TestStatusWatchRedraws(t *testing.T) {
	dir := copyFixture(t, "pool")
	ticks := make(chan time.Time, 2)
	ticks <- time.Time{}
	ticks <- time.Time{}
	var out, errb bytes.Buffer
	code := runStatus(context.Background(), []string{"--watch", "5s", "--now", fixtureNow, "--color", "never"}, &out, &errb, envFor(dir),
		statusLoop{ticks: ticks, frames: 3})
	assert.Equal(t, exitOK, code, errb.String())
	assert.Equal(t, 3, strings.Count(out.String(), "acctpool status  2026-01-01"), "one frame per tick plus the first")
	assert.NotContains(t, out.String(), "\x1b[", "no escapes when stdout is not a terminal")

	out.Reset()
	ticks <- time.Time{}
	code = runStatus(context.Background(), []string{"--watch", "--now", fixtureNow}, &out, &errb, envFor(dir),
		statusLoop{ticks: ticks, frames: 2, terminal: true})
	assert.Equal(t, exitOK, code)
	assert.Equal(t, 2, strings.Count(out.String(), "\x1b[H\x1b[2J"), "on a terminal every frame clears the screen first")
	assert.True(t, strings.HasPrefix(out.String(), "\x1b[H\x1b[2J"))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out.Reset()
	code = runStatus(ctx, []string{"--watch", "--now", fixtureNow}, &out, &errb, envFor(dir), statusLoop{ticks: make(chan time.Time)})
	assert.Equal(t, exitOK, code)
	assert.Equal(t, 1, strings.Count(out.String(), "acctpool status  "), "a cancelled watch stops after the frame it drew")
}

func TestStatusRefreshPollsUsage(t *testing.T) {
	dir := copyFixture(t, "pool")
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		polls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"five_hour":{"utilization":25,"resets_at":"2026-01-01T14:00:00Z"},"seven_day":{"utilization":50,"resets_at":"2026-01-05T10:00:00Z"}}`)
	}))
	defer srv.Close()
	// Ten minutes after the fixture every snapshot is stale and fb3's quota
	// backoff is over; fb2 needs a re-login and main's token is the host's.
	code, out, errOut := call(Status, envFor(dir), "", "--now", "2026-01-01T10:10:00Z", "--refresh", "--json", "--usage-url", srv.URL)
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, int32(2), polls.Load(), "fb1 and fb3 are polled, nobody else")
	var got statusJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	for _, v := range got.Accounts {
		if v.Label == "fb1" || v.Label == "fb3" {
			require.NotNil(t, v.Quota)
			require.NotNil(t, v.Quota.FiveHour)
			assert.Equal(t, 75.0, v.Quota.FiveHour.RemainingPercent, v.Label)
		}
	}
}

func TestStatusRefreshReportsFailures(t *testing.T) {
	dir := copyFixture(t, "pool")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	code, out, errOut := call(Status, envFor(dir), "", "--now", "2026-01-01T10:10:00Z", "--refresh", "--color", "never", "--usage-url", srv.URL)
	assert.Equal(t, exitOK, code, "the cached snapshots still serve")
	assert.Contains(t, errOut, "acctpool status: quota of 5f0e2b1c-1111-4a0a-8c1d-0000000000f1: failed")
	assert.Contains(t, out, "quota polls paused, resume in", "the armed quota backoff shows on the screen")
}
