//go:build linux

package core

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeBehindChild(dir string) error {
	timers := &manualTimers{}
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	store, err := NewStore(StoreOptions{Paths: paths, AfterFunc: timers.AfterFunc})
	if err != nil {
		return err
	}
	clock := NewManualClock(testStart)
	closed := "http://127.0.0.1:9"
	e, err := New(Options{Store: store, Clock: clock, Endpoints: Endpoints{Token: closed + "/t", Usage: closed + "/u", Profile: closed + "/p"}})
	if err != nil {
		return err
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "report": // a served response with 5h utilization arg %
			clock.Advance(time.Second)
			r, err := e.Select(ctx, SelectRequest{})
			if err != nil {
				return err
			}
			if _, err := e.Report(ctx, ReportRequest{Route: *r, Status: 200, Replayable: true, Headers: map[string]string{
				"anthropic-ratelimit-unified-5h-utilization": "0." + arg, "anthropic-ratelimit-unified-7d-utilization": "0.1"}}); err != nil {
				return err
			}
			fmt.Printf("reported %s %d scheduled %d\n", r.AccountID, epochMs(clock.Now()), timers.scheduled())
		case "flush": // the write-behind interval ends
			fmt.Printf("flushed %d\n", timers.fire())
		case "add": // a credential change: an API-key account
			if _, err := e.AddAccount(ctx, AccountSpec{ID: arg, Label: arg, Type: record.AccountAPI, APIKey: secret.Secret("sk-ant-api03-" + arg), BaseURL: "https://api.example.test"}); err != nil {
				return err
			}
			fmt.Println("added", arg)
		default:
			return fmt.Errorf("unknown command %q", cmd)
		}
	}
	return in.Err()
}

// TestWriteBehind_killedInsideInterval kills a real child process with
// SIGKILL inside a write-behind interval: every credential change it
// answered is on disk, and the observations on disk are those up to the
// last write, so what is lost is at most the one interval the kill cut
// short (BEHAVIOUR.md §1.9).
func TestWriteBehind_killedInsideInterval(t *testing.T) {
	dir := t.TempDir()
	cfg, state := routeFiles(t, `"routing":{"mode":"fallback-first"}`, nil, fb{id: "fb", quota: fq(80, 80)})
	paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
	require.NoError(t, os.WriteFile(paths.Config, []byte(cfg), 0o600))
	require.NoError(t, os.WriteFile(paths.State, []byte(state), 0o600))

	cmd := childCommand("write-behind", "ACCTPOOL_DIR="+dir)
	stderr := newLockedBuffer()
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewReader(stdout)
	say := func(line, want string) []string {
		t.Helper()
		_, err := fmt.Fprintln(stdin, line)
		require.NoError(t, err)
		got, err := out.ReadString('\n')
		require.NoError(t, err, "child stderr: %s", stderr.String())
		f := strings.Fields(got)
		require.NotEmpty(t, f)
		require.Equal(t, want, f[0], "child answered %q", got)
		return f
	}
	lastUsed := func(f []string) int64 {
		n, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		return n
	}

	// Interval 1: three observations, then the interval ends.
	var third int64
	for _, u := range []string{"1", "2", "3"} {
		third = lastUsed(say("report "+u, "reported"))
	}
	onDisk := func() *Account {
		t.Helper()
		snap, err := (&Store{paths: paths, interval: defaultWriteBehind, afterFunc: systemAfterFunc, files: &filestore.Files{Config: paths.Config, State: paths.State, RoutingState: paths.RoutingState}}).Load(context.Background())
		require.NoError(t, err)
		a, ok := snap.Account("fb")
		require.True(t, ok)
		return a
	}
	assert.Less(t, onDisk().State.LastUsed, third, "not written inside the interval")
	assert.Equal(t, []string{"flushed", "1"}, say("flush", "flushed"))
	assert.Equal(t, third, onDisk().State.LastUsed, "written when the interval ends")
	// Interval 2: two observations, then a credential change, which
	// carries them along.
	say("report 4", "reported")
	carried := lastUsed(say("report 5", "reported"))
	say("add k1", "added")
	// Interval 3: two more observations, the kill comes before its end.
	say("report 6", "reported")
	f := say("report 7", "reported")
	require.Equal(t, "1", f[4], "a flush is scheduled: we are inside an interval")
	require.Greater(t, lastUsed(f), carried)
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()

	s, err := NewStore(StoreOptions{Paths: paths})
	require.NoError(t, err, "the files are readable after the kill")
	snap, err := s.Load(context.Background())
	require.NoError(t, err)
	k1, ok := snap.Account("k1")
	require.True(t, ok, "the credential change survived the kill")
	assert.Equal(t, secret.Secret("sk-ant-api03-k1"), k1.State.APIKey)
	a, ok := snap.Account("fb")
	require.True(t, ok)
	assert.Equal(t, secret.Secret("access-fb"), a.State.Access, "credentials intact")
	assert.Equal(t, carried, a.State.LastUsed, "observations up to the last write are on disk; only the cut interval is lost")
	require.NotNil(t, a.State.Quota.FiveHour)
	assert.InDelta(t, 50, a.State.Quota.FiveHour.RemainingPercent, 0.001, "the 5h window of report 5")
}
