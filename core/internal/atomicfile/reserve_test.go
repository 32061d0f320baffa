//go:build linux

package atomicfile

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core/internal/procid"
)

func TestReserve_commitUsesTheReservedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	r, err := Reserve(path, 64<<10)
	require.NoError(t, err)
	fi, err := os.Stat(r.Path())
	require.NoError(t, err)
	assert.Equal(t, int64(64<<10), fi.Size(), "the room is taken before the write")
	assert.True(t, strings.HasPrefix(filepath.Base(r.Path()), "state.json.acctpool."), r.Path())
	r.Shrink(1 << 10)
	require.NoError(t, r.Commit([]byte("new\n")))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "new\n", string(got), "no reserved zeros left over")
	assertOnly(t, dir, "state.json")
	assert.Error(t, r.Commit([]byte("again")), "a reservation commits once")
}

func TestReservation_WriteSyncedIsAJournal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	r, err := Reserve(path, 4096)
	require.NoError(t, err)
	require.NoError(t, r.WriteSynced([]byte(`{"a":1}`)))
	got, err := os.ReadFile(r.Path())
	require.NoError(t, err)
	assert.Equal(t, `{"a":1}`, string(got))
	assert.NoFileExists(t, path, "not renamed")
	stale, err := Stale(path)
	require.NoError(t, err)
	assert.Empty(t, stale, "its writer (this process) is alive")
	r.Abort()
	assertOnly(t, dir)
}

func TestStale_deadWriterOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	require.NoError(t, cmd.Wait())
	me := procid.Self()
	dead := "state.json" + tempMarker + hostTag(me) + "." + strconv.Itoa(pid) + ".12345.abcdef.tmp"
	otherHost := "state.json" + tempMarker + "00000000." + strconv.Itoa(pid) + ".12345.abcdef.tmp"
	plugin := "state.json.1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed.tmp"
	for _, n := range []string{dead, otherHost, plugin} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("{}"), 0o600))
	}
	removed, err := RemoveStale(path)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, dead)}, removed)
	assertOnly(t, dir, plugin, otherHost) // sorted
}

func TestWrite_throughSymlinks(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "real"), 0o700))
	target := filepath.Join(dir, "real", "state.json")
	require.NoError(t, os.WriteFile(target, []byte("old"), 0o600))
	require.NoError(t, os.Symlink("real/state.json", filepath.Join(dir, "hop")))
	link := filepath.Join(dir, "state.json")
	require.NoError(t, os.Symlink("hop", link)) // two hops
	require.NoError(t, Write(link, []byte("new")))
	got, err := os.ReadFile(target)
	require.NoError(t, err)
	assert.Equal(t, "new", string(got))
	fi, err := os.Lstat(link)
	require.NoError(t, err)
	assert.NotZero(t, fi.Mode()&os.ModeSymlink)

	loop := filepath.Join(dir, "loop")
	require.NoError(t, os.Symlink("loop", loop))
	err = Write(loop, []byte("x"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "too many levels of symbolic links")
}
