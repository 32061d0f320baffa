//go:build linux

package procid

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelf_linuxFieldsAndAlive(t *testing.T) {
	me := Self()
	require.Equal(t, os.Getpid(), me.PID)
	require.NotEmpty(t, me.Start, "start time from /proc/self/stat")
	require.NotEmpty(t, me.BootID)
	require.NotEmpty(t, me.PIDNS)
	assert.False(t, Dead(me), "the caller is never dead")
}

func TestDead(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	child := Self()
	child.PID = cmd.Process.Pid
	child.Start = startTime(cmd.Process.Pid)
	require.NoError(t, cmd.Wait()) // reaped: the pid is gone
	if child.Start == "" {
		child.Start = "1"
	}
	live := Self()
	recycled := Self()
	recycled.Start = "0" // our pid with another start time: a reused pid
	cases := []struct {
		name string
		id   Identity
		dead bool
	}{
		{"exited child", child, true},
		{"self", live, false},
		{"reused pid", recycled, true},
		{"other host", with(child, func(i *Identity) { i.Host = "elsewhere" }), false},
		{"other boot", with(child, func(i *Identity) { i.BootID = "x" }), false},
		{"other pid namespace", with(child, func(i *Identity) { i.PIDNS = "1" }), false},
		{"no start time (upstream lock)", with(child, func(i *Identity) { i.Start = "" }), false},
		{"no pid", Identity{}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.dead, Dead(c.id))
		})
	}
}

func with(id Identity, f func(*Identity)) Identity { f(&id); return id }
