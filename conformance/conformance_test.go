package conformance

import (
	"context"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// servers caches one build per tag set for the whole test binary.
var (
	serversMu sync.Mutex
	servers   = map[string]string{}
	binDir    string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acctpool-conformance-test-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func buildServer(t *testing.T, tags ...string) string {
	t.Helper()
	serversMu.Lock()
	defer serversMu.Unlock()
	key := strings.Join(tags, ",")
	if bin, ok := servers[key]; ok {
		return bin
	}
	dir, err := os.MkdirTemp(binDir, "build-")
	require.NoError(t, err)
	bin, err := BuildServer(context.Background(), dir, tags...)
	require.NoError(t, err)
	servers[key] = bin
	return bin
}

func embeddedCases(t *testing.T) []*Case {
	t.Helper()
	sub, err := fs.Sub(Cases, "cases")
	require.NoError(t, err)
	cases, err := LoadCases(sub)
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	return cases
}

// TestSuite runs every embedded case against a freshly built
// ./cmd/stdio-server, one subtest per case. A case marked pending that
// fails is skipped with its reason (shown as SKIP, never as PASS).
func TestSuite(t *testing.T) {
	bin := buildServer(t)
	opts := Options{Server: []string{bin}}
	for _, c := range embeddedCases(t) {
		t.Run(c.ID, func(t *testing.T) {
			t.Parallel()
			r := RunCase(context.Background(), opts, c)
			switch r.Status {
			case StatusPassed:
				if c.Pending != "" {
					t.Logf("case is marked pending (%s) but passes: remove the mark", c.Pending)
				}
			case StatusPending:
				t.Skipf("PENDING: %s; failures: %s", r.Pending, strings.Join(r.Failures, "; "))
			default:
				for _, f := range r.Failures {
					t.Error(f)
				}
				if r.Stderr != "" {
					t.Logf("server stderr (tail):\n%s", r.Stderr)
				}
			}
		})
	}
}
