package plugins

import (
	"testing"
	"time"

	json "github.com/goccy/go-json"
)

// FuzzParseManifest: whatever the bytes, ParseManifest either rejects
// them with a one-line error or returns a manifest whose limits are within
// the host maxima, with positive deadlines, and survive a JSON round
// trip. Seeds: testdata/fuzz/FuzzParseManifest.
func FuzzParseManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			if m.Err() == nil {
				t.Fatalf("error %q not kept on the manifest", err)
			}
			for _, c := range err.Error() {
				if c == '\n' {
					t.Fatalf("error is not one line: %q", err)
				}
			}
			return
		}
		l, err := m.Limits.effective()
		if err != nil {
			t.Fatalf("accepted manifest has limits the host refuses: %v", err)
		}
		checkLimits(t, l)
		raw, err := json.Marshal(m.Limits)
		if err != nil {
			t.Fatal(err)
		}
		var back Limits
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("limits %s do not decode again: %v", raw, err)
		}
		if back != m.Limits {
			t.Fatalf("limits round trip: %+v -> %s -> %+v", m.Limits, raw, back)
		}
	})
}

// checkLimits asserts effective limits are within the host maxima.
func checkLimits(t *testing.T, l Limits) {
	t.Helper()
	switch {
	case l.MemoryPages == 0 || l.MemoryPages > MaxMemoryPages:
		t.Fatalf("memoryPages %d outside 1..%d", l.MemoryPages, MaxMemoryPages)
	case l.CallTimeout <= 0 || l.CallTimeout > MaxCallTimeout:
		t.Fatalf("callTimeout %v outside (0, %v]", l.CallTimeout, MaxCallTimeout)
	case l.InitTimeout <= 0 || l.InitTimeout > MaxInitTimeout:
		t.Fatalf("initTimeout %v outside (0, %v]", l.InitTimeout, MaxInitTimeout)
	case l.CallTimeout%time.Millisecond != 0 || l.InitTimeout%time.Millisecond != 0:
		t.Fatalf("deadlines %v/%v are not whole milliseconds", l.CallTimeout, l.InitTimeout)
	case l.MaxInputBytes <= 0 || l.MaxInputBytes > MaxInputBytes:
		t.Fatalf("maxInputBytes %d outside 1..%d", l.MaxInputBytes, MaxInputBytes)
	case l.MaxOutputBytes <= 0 || l.MaxOutputBytes > MaxOutputBytes:
		t.Fatalf("maxOutputBytes %d outside 1..%d", l.MaxOutputBytes, MaxOutputBytes)
	case l.RecycleAfter <= 0 || l.RecycleAfter > MaxRecycleAfter:
		t.Fatalf("recycleAfter %d outside 1..%d", l.RecycleAfter, MaxRecycleAfter)
	}
}
