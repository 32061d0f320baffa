package plugins

import (
	"context"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/acctpool/acctpool/core"
)

var testCacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "acctpool-plugins-cache-")
	if err != nil {
		panic(err)
	}
	testCacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestOKPlugin(t *testing.T) {
	logs := &syncBuffer{}
	h := newHost(t, logs, fixture(t, "ok"))
	ctx := context.Background()

	v := h.Classify(ctx, failure(403))
	assert.Equal(t, core.Verdict{Class: core.ClassInvalidGrant, RetryAfter: 1500e6, Reason: "wat fixture: 403 is invalid_grant", DecidedBy: "plugin:ok"}, v)

	// No opinion: the built-in verdict stands.
	v = h.Classify(ctx, failure(401))
	assert.Equal(t, core.ClassifyBuiltin(failure(401)), v)

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
