package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRun scripts the fake over /_fake/script, sends a streamed Messages
// request through it, reads it back from /_fake/requests, and stops it by
// closing stdin.
func TestRun(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- run(nil, inR, outW, io.Discard) }()
	line, err := bufio.NewReader(outR).ReadString('\n')
	require.NoError(t, err)
	base := strings.TrimSpace(line)
	require.True(t, strings.HasPrefix(base, "http://127.0.0.1:"), base)

	req, err := http.NewRequest(http.MethodPut, base+"/_fake/script",
		strings.NewReader(`{"messages":[{"times":-1,"respond":{"body":{"$messages":{"text":"hi"}}}}]}`))
	require.NoError(t, err)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusNoContent, res.StatusCode)

	res, err = http.Post(base+"/v1/messages", "application/json", strings.NewReader(`{"model":"m","stream":true}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	assert.Contains(t, string(body), "event: message_stop")
	assert.Contains(t, string(body), `"text":"hi"`)

	res, err = http.Get(base + "/_fake/requests")
	require.NoError(t, err)
	var recs []struct{ Endpoint, Path string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&recs))
	res.Body.Close()
	require.Len(t, recs, 1)
	assert.Equal(t, "messages", recs[0].Endpoint)

	require.NoError(t, inW.Close())
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(20 * time.Second):
		t.Fatal("fakeanthropic did not stop when stdin closed")
	}
}
