package plugins

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/verdict"
)

var (
	testCacheDir string
	// goExample is the path of plugins/examples/go-org403 built for
	// wasip1 by TestMain, or "" with goExampleErr saying why not.
	goExample    string
	goExampleErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acctpool-plugins-")
	if err != nil {
		panic(err)
	}
	testCacheDir = filepath.Join(dir, "cache")
	goExample, goExampleErr = buildGoExample(filepath.Join(dir, "go-org403.wasm"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildGoExample builds the Go example plugin from source, as its README
// says, with the toolchain running the test.
func buildGoExample(out string) (string, error) {
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-ldflags=-s -w", "-trimpath", "-o", out, "./examples/go-org403")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build go example: %v: %s", err, b)
	}
	return out, nil
}

func goManifest(t testing.TB) Manifest {
	t.Helper()
	require.NoError(t, goExampleErr)
	return manifestFor(t, "go-org403", goExample)
}

func TestOKPlugin(t *testing.T) {
	logs := &syncBuffer{}
	h := newHost(t, logs, fixture(t, "ok"))
	ctx := context.Background()

	v := h.Classify(ctx, failure(403))
	assert.Equal(t, verdict.Verdict{Class: verdict.ClassInvalidGrant, RetryAfter: 1500e6, Reason: "wat fixture: 403 is invalid_grant", DecidedBy: "plugin:ok"}, v)

	// No opinion: the built-in verdict stands.
	v = h.Classify(ctx, failure(401))
	assert.Equal(t, verdict.ClassifyBuiltin(failure(401)), v)

	// 418 logs a line with control characters; many calls stay logged
	// because the limits are per call.
	for range 40 {
		v = h.Classify(ctx, failure(418))
		assert.Equal(t, "builtin", v.DecidedBy)
	}
	assert.Contains(t, logs.String(), "plugin=ok")
	assert.Contains(t, logs.String(), `line="teapot[31m lin"`)
	assert.NotContains(t, logs.String(), "\x1b")

	s := statusOf(t, h, "ok")
	assert.Equal(t, StateActive, s.State)
	assert.EqualValues(t, 42, s.Calls)
	assert.Empty(t, s.Faults)
}

func orgFailure(org string) verdict.Failure {
	return verdict.Failure{Source: verdict.SourceUsage, Status: 403,
		Header: http.Header{"Anthropic-Organization-Id": {org}, "Retry-After": {"9"}, "Authorization": {"Bearer sk-secret"}},
		Body:   []byte(`{"type":"error","error":{"type":"permission_error","message":"nope"}}`), Message: "usage: 403"}
}

// TestGoExampleEndToEnd: the Go example, built from source, decides through
// Host.Classify and through a core.Engine.
func TestGoExampleEndToEnd(t *testing.T) {
	h := newHost(t, nil, goManifest(t))
	ctx := context.Background()

	v := h.Classify(ctx, orgFailure("org-acme-0001"))
	assert.Equal(t, verdict.Verdict{Class: verdict.ClassInvalidGrant, RetryAfter: 9 * time.Second,
		Reason: "403 from org-acme-0001: grant revoked by the organisation", DecidedBy: "plugin:go-org403"}, v)
	other := orgFailure("org-other")
	assert.Equal(t, verdict.ClassifyBuiltin(other), h.Classify(ctx, other))

	dir := t.TempDir()
	store, err := core.NewStore(core.StoreOptions{Paths: core.Paths{
		Config: filepath.Join(dir, "config.json"), State: filepath.Join(dir, "state.json")}})
	require.NoError(t, err)
	eng, err := core.New(core.Options{Store: store, Classifier: h})
	require.NoError(t, err)
	v = eng.Classify(ctx, orgFailure("org-acme-0001"))
	assert.Equal(t, verdict.ClassInvalidGrant, v.Class)
	assert.Equal(t, "plugin:go-org403", v.DecidedBy)
	v = eng.Classify(ctx, other)
	assert.Equal(t, verdict.ClassOrgPolicy, v.Class)
	assert.Equal(t, "builtin", v.DecidedBy)

	s := statusOf(t, h, "go-org403")
	assert.Equal(t, StateActive, s.State)
	assert.EqualValues(t, 4, s.Calls)
	assert.Empty(t, s.Faults)
}
