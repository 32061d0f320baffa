package core

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acctpool/acctpool/core/internal/filestore"
	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The fuzz targets of core's parsers. `go test` runs their seeds
// (testdata/fuzz and the f.Add calls); scripts/fuzz runs each for a while.

var fuzzNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// loadStable writes data as the file at path, loads it with read, and, if
// it loads, checks that encoding is stable: encode → decode → encode gives
// the same bytes. It returns the first encoding.
func loadStable[T any](t *testing.T, path string, data []byte, read func(string) (*T, []byte, error)) (*T, []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	v, raw, err := read(path)
	if err != nil {
		require.ErrorIs(t, err, ErrCorruptFile)
		if len(bytes.TrimSpace(data)) > 16 {
			assert.NotContains(t, err.Error(), string(bytes.TrimSpace(data)), "a corrupt-file error must not quote the file")
		}
		return nil, nil
	}
	require.NotNil(t, v)
	assert.Equal(t, data, raw)
	enc1, err := filestore.Encode(v)
	require.NoError(t, err)
	var again T
	require.NoError(t, json.Unmarshal(enc1, &again), "our own encoding must decode: %s", enc1)
	enc2, err := filestore.Encode(&again)
	require.NoError(t, err)
	require.Equal(t, string(enc1), string(enc2), "encode → decode → encode must be stable")
	return v, enc1
}

// FuzzLoadConfig: the config loader accepts or reports corruption, never
// panics, round-trips what it accepts, and settings parse or are refused
// as config_invalid.
func FuzzLoadConfig(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"accounts":[]}`,
		`{"version":1,"mainAccountId":"main","accounts":[{"id":"a1","label":"A","type":"oauth","enabled":true,"addedAt":1}],"routing":{"mode":"sticky-balanced"},"fallbackOn":[401,429],"future":{"x":[1,2]}}`,
		`{"accounts":[{"id":"k","type":"api","baseURL":"https://api.example.com","authHeader":"x-api-key"}],"quota":{"enabled":true,"checkIntervalMinutes":9223372036855,"minimumRemaining":{"5h":10}}}`,
		`{"refresh":{"enabled":false,"refreshBeforeExpiryMinutes":1e300},"killswitch":{"enabled":true,"main":{"five_hour":5},"accounts":{"a":{"1w":3}}}}`,
		`{"accounts":null}`, `{`, `[]`, `null`, ``, `{"accounts":{"a":1}}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _ := loadStable(t, filepath.Join(dir, "anthropic-auth.json"), data, filestore.ReadConfigFile)
		if cfg == nil {
			return
		}
		if _, err := buildSnapshot(cfg, nil); err != nil {
			assert.ErrorIs(t, err, ErrConfigInvalid)
		}
	})
}

// FuzzLoadState: the state loader accepts or reports corruption, never
// panics, and round-trips what it accepts.
func FuzzLoadState(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"accounts":{}}`,
		`{"version":1,"main":{"quotaCheckedAt":5,"lastQuotaApiError":{"kind":"rate_limited","checkedAt":1,"nextRetryAt":2,"count":1}},"accounts":{"a1":{"access":"sk-ant-oat01-x","refresh":"sk-ant-ort01-y","expires":1764342000000,"quota":{"source":"usage","checkedAt":3,"fiveHour":{"usedPercent":40,"remainingPercent":60}},"extra":true}},"other":null}`,
		`{"accounts":{"a":null}}`, `{"main":null}`, `{"accounts":[]}`, `{`, `null`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		st, _ := loadStable(t, filepath.Join(dir, "anthropic-auth-state.json"), data, filestore.ReadStateFile)
		if st == nil {
			return
		}
		_, _ = buildSnapshot(nil, st) // must not panic
	})
}
