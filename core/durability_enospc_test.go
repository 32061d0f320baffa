//go:build linux

package core

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tinyDisk mounts a 256 KiB tmpfs for the test, or returns "" when the
// process may not mount (not root, no CAP_SYS_ADMIN).
func tinyDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k,mode=0700"); err != nil {
		return ""
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fillDisk fills the file system of dir up to the last byte with a filler
// file, then gives back free bytes.
func fillDisk(t *testing.T, dir string, free int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	defer f.Close()
	chunk := make([]byte, 4096)
	var size int64
	for {
		n, err := f.Write(chunk)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		require.NoError(t, err)
	}
	require.NoError(t, f.Truncate(max(size-free, 0)))
}

// TestEngine_fullDiskNeverStrandsAnAccount: with the disk full but for 0
// to 12 pages, a refresh either stops before the token call (the space
// for the save cannot be reserved) or rotates and saves: the state file
// never ends up holding only a refresh token the endpoint has consumed.
// It needs a tmpfs (root); TestEngine_writeLimitRefusesBeforeTokenCall
// injects the write failure without one.
func TestEngine_fullDiskNeverStrandsAnAccount(t *testing.T) {
	disk := tinyDisk(t)
	if disk == "" {
		t.Skip("cannot mount a tmpfs (needs root); TestEngine_writeLimitRefusesBeforeTokenCall injects the failure instead")
	}
	refused, rotated := 0, 0
	for pages := int64(0); pages <= 12; pages++ {
		dir := filepath.Join(disk, "p"+itoa(pages))
		require.NoError(t, os.Mkdir(dir, 0o700))
		fake := newRotatingEndpoint(t, false)
		fake.plant("fb", "sk-ant-ort01-REFRESHPLANT")
		paths := Paths{Config: filepath.Join(dir, ConfigFileName), State: filepath.Join(dir, StateFileName)}
		cfg, st := oneFallback(time.Now().Add(8 * time.Hour))
		writeFile(t, paths.Config, cfg)
		writeFile(t, paths.State, st)
		store, err := NewStore(StoreOptions{Paths: paths})
		require.NoError(t, err)
		e, err := New(Options{Store: store, Endpoints: Endpoints{Token: fake.srv.URL}})
		require.NoError(t, err)

		fillDisk(t, disk, pages*4096)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, rerr := e.RefreshAccount(ctx, "fb")
		cancel()
		disked, _, err := filestore.ReadStateFile(paths.State)
		require.NoError(t, err, "%d free pages: the state file is readable", pages)
		stored := disked.Accounts["fb"].Refresh.Reveal()
		assert.False(t, fake.isConsumed(stored), "%d free pages: the disk holds a consumed refresh token (refresh error: %v)", pages, rerr)
		pending, _ := store.pendingOf("fb")
		assert.False(t, pending, "%d free pages: nothing left unsaved", pages)
		calls, _ := fake.counts()
		if rerr != nil {
			refused++
			assert.Zero(t, calls, "%d free pages: refused, so the token endpoint was not called: %v", pages, rerr)
		} else {
			rotated++
			assert.Equal(t, fake.latestOf("fb"), stored, "%d free pages", pages)
		}
		t.Logf("%2d free pages: %s", pages, map[bool]string{true: "refused before the token call", false: "rotated and saved"}[rerr != nil])
		require.NoError(t, os.Remove(filepath.Join(disk, "filler")))
		drain(t, e)
	}
	assert.Positive(t, refused, "some disk was too full to try")
	assert.Positive(t, rotated, "some disk had room")
}

// TestEngine_writeLimitRefusesBeforeTokenCall: in a child process whose
// file-size limit (RLIMIT_FSIZE) lets small files through but not the room
// a save needs, a refresh fails before the token call, so the account keeps
// its unconsumed token. Writes beyond the limit fail with EFBIG, which
// stands in for a full disk where no tmpfs can be mounted.
func TestEngine_writeLimitRefusesBeforeTokenCall(t *testing.T) {
	env := newDurableEnv(t, false, nil)
	cmd, _, _, stderr := startDurableChild(t, "fsizelimit", "ACCTPOOL_DIR="+env.dir, "ACCTPOOL_URL="+env.fake.srv.URL)
	err := cmd.Wait()
	require.Error(t, err, "the child's refresh fails: %s", stderr)
	assert.Contains(t, stderr.String(), "not attempted")
	calls, _ := env.fake.counts()
	assert.Zero(t, calls, "the token endpoint was not called")
	assert.Equal(t, "sk-ant-ort01-REFRESHPLANT", env.storedRefresh(t))
	assert.False(t, env.fake.isConsumed(env.storedRefresh(t)))
}

// fsizeLimitChild refreshes account fb with writes limited to 2 KiB a file.
func fsizeLimitChild() error {
	signal.Ignore(syscall.SIGXFSZ)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 2048, Max: 2048}); err != nil {
		return err
	}
	return durableRefreshChild()
}
