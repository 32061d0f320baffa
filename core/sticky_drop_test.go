package core

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// warnRecords returns the warn-level records logged to buf as JSON.
func warnRecords(t *testing.T, buf *bytes.Buffer) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var rec map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
		if rec["level"] == "WARN" {
			out = append(out, rec)
		}
	}
	buf.Reset()
	return out
}

// TestSticky_droppedChangesWarnOncePerBurst: more new sessions in one
// write-behind interval than the queue holds drop the oldest queued
// changes; the next write attempt logs one warning naming how many, and a
// write with nothing dropped logs none.
func TestSticky_droppedChangesWarnOncePerBurst(t *testing.T) {
	env := routeEnv(t, `"routing":{"mode":"sticky-balanced"}`, nil, fb{id: "a", quota: fq(80, 80)})
	var buf bytes.Buffer
	env.engine.log = slog.New(slog.NewJSONHandler(&buf, nil))
	newSessions := func(from, n int) {
		for i := from; i < from+n; i++ {
			var key [32]byte
			binary.BigEndian.PutUint64(key[:], uint64(i))
			require.NoError(t, env.engine.updateSticky(env.ctx(), key, func(f *stickyFile, now time.Time) (bool, error) {
				f.set(key, &stickyAssignment{AccountID: "a", Family: "sonnet", AssignedAt: epochMs(now), LastSeenAt: epochMs(now), InitialInputBytes: 1})
				return true, nil
			}))
		}
	}

	newSessions(0, maxQueued+7)
	assert.Empty(t, warnRecords(t, &buf), "dropping is reported by the write attempt, not per change")
	require.Equal(t, 1, env.timers.fire())
	got := warnRecords(t, &buf)
	require.Len(t, got, 1)
	assert.Contains(t, got[0]["msg"], "sticky assignments dropped")
	assert.EqualValues(t, 7, got[0]["dropped"])
	assert.EqualValues(t, maxQueued, got[0]["cap"])

	// The next burst is counted afresh.
	newSessions(maxQueued+7, maxQueued+2)
	require.Equal(t, 1, env.timers.fire())
	got = warnRecords(t, &buf)
	require.Len(t, got, 1)
	assert.EqualValues(t, 2, got[0]["dropped"])

	// Within the cap nothing is dropped and nothing is said.
	newSessions(3*maxQueued, 5)
	require.Equal(t, 1, env.timers.fire())
	assert.Empty(t, warnRecords(t, &buf))
}
