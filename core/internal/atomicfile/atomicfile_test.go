package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWrite(t *testing.T) {
	cases := []struct {
		name    string
		existed bool
	}{
		{"creates the file and its directory", false},
		{"replaces an existing file", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "a", "b")
			path := filepath.Join(dir, "state.json")
			if tc.existed {
				require.NoError(t, os.MkdirAll(dir, 0o755))
				require.NoError(t, os.WriteFile(path, []byte("old old old old"), 0o644))
			}
			require.NoError(t, Write(path, []byte("new\n")))

			got, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, "new\n", string(got))
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "mode 0600 even over a 0644 file")
			if !tc.existed {
				di, err := os.Stat(dir)
				require.NoError(t, err)
				assert.Equal(t, os.FileMode(0o700), di.Mode().Perm())
			}
			assertOnly(t, dir, "state.json")
		})
	}
}

func TestWrite_failureLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	// The target is a non-empty directory: the rename fails.
	path := filepath.Join(dir, "state.json")
	require.NoError(t, os.MkdirAll(filepath.Join(path, "x"), 0o700))
	err := Write(path, []byte("new\n"))
	require.Error(t, err)
	assertOnly(t, dir, "state.json")
	assert.DirExists(t, filepath.Join(path, "x"), "target untouched")
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	assert.Equal(t, names, got, "no .tmp leftovers")
}
