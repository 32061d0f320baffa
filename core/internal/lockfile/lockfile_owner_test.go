//go:build linux

package lockfile

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/internal/procid"
)

// startedChild starts a long-running child process and returns its
// identity as it would record it in a lock file.
func startedChild(t *testing.T) (*exec.Cmd, procid.Identity) {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	id := procid.Self()
	id.PID = cmd.Process.Pid
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(id.PID) + "/stat")
	require.NoError(t, err)
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	id.Start = f[19]
	return cmd, id
}

func plantOwner(t *testing.T, path string, o owner) {
	t.Helper()
	data, err := json.Marshal(o)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, append(data, '\n'), 0o600))
}

func TestTryAcquire_fileCarriesProcessIdentity(t *testing.T) {
	clk := newFakeClock()
	path := filepath.Join(t.TempDir(), "x.lock")
	l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
	require.NoError(t, err)
	require.NotNil(t, l)
	defer l.Release()
	var raw map[string]any
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &raw))
	me := procid.Self()
	assert.Equal(t, float64(me.PID), raw["pid"])
	assert.Equal(t, me.Start, raw["procStart"])
	assert.Equal(t, me.BootID, raw["bootId"])
	assert.Equal(t, me.PIDNS, raw["pidNs"])
	assert.Equal(t, me.Host, raw["host"])
	assert.Contains(t, raw, "ownerId")
	assert.Contains(t, raw, "expiresAt")
}

// TestTryAcquire_deadHolder: a lock far from expiry whose owner was killed
// is taken at once; one whose owner lives, or that names no process (the
// upstream plugin's), is not.
func TestTryAcquire_deadHolder(t *testing.T) {
	clk := newFakeClock()
	dead, deadID := startedChild(t)
	require.NoError(t, dead.Process.Kill())
	_ = dead.Wait()
	_, liveID := startedChild(t)

	cases := []struct {
		name  string
		owner procid.Identity
		taken bool
	}{
		{"killed owner", deadID, true},
		{"live owner", liveID, false},
		{"upstream lock without identity", procid.Identity{}, false},
		{"killed owner on another host", func() procid.Identity { i := deadID; i.Host = "other-host"; return i }(), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.lock")
			plantOwner(t, path, owner{OwnerID: "holder", ExpiresAt: clk.Now().Add(time.Hour).UnixMilli(), Identity: c.owner})
			l, err := TryAcquire(context.Background(), path, clk.opts(10*time.Second))
			require.NoError(t, err)
			if !c.taken {
				assert.Nil(t, l)
				assert.Equal(t, "holder", readLock(t, path).OwnerID)
				return
			}
			require.NotNil(t, l)
			defer l.Release()
			assert.Equal(t, l.OwnerID(), readLock(t, path).OwnerID)
			assert.NoDirExists(t, path+markerSuffix)
		})
	}
}

// TestAcquire_timeoutNamesHolder: the wait's error says which process holds
// the lock and until when.
func TestAcquire_timeoutNamesHolder(t *testing.T) {
	clk := newFakeClock()
	_, liveID := startedChild(t)
	path := filepath.Join(t.TempDir(), "x.lock")
	until := clk.Now().Add(time.Hour)
	plantOwner(t, path, owner{OwnerID: "holder", ExpiresAt: until.UnixMilli(), Identity: liveID})
	_, err := Acquire(context.Background(), path, clk.opts(10*time.Second), time.Second, 25*time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout)
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, liveID.PID, te.Holder.PID)
	assert.Equal(t, until.UnixMilli(), te.Until.UnixMilli())
	assert.Contains(t, err.Error(), "pid "+strconv.Itoa(liveID.PID)+" on host "+liveID.Host)
	assert.Contains(t, err.Error(), until.UTC().Format(time.RFC3339))
}

// TestAcquire_endsBeforeContextDeadline: a wait longer than the caller's
// deadline ends with the holder's name, not with the context's error.
func TestAcquire_endsBeforeContextDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	plantOwner(t, path, owner{OwnerID: "holder", ExpiresAt: time.Now().Add(time.Hour).UnixMilli()})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Acquire(ctx, path, Options{TTL: time.Second, RenewEvery: -1}, time.Hour, 25*time.Millisecond)
	require.ErrorIs(t, err, ErrTimeout, "the holder's lock_timeout, not the context's error")
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
}
