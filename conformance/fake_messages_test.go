package conformance

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFake_messagesReply(t *testing.T) {
	f := NewFake(map[string][]Exchange{"messages": {{
		Times:   -1,
		Respond: Response{Headers: map[string]string{"x-fake": "1"}, Body: map[string]any{"$messages": map[string]any{"text": "hello from the fake"}}},
	}}})
	defer f.Close()
	post := func(body string) *http.Response {
		req, err := http.NewRequest(http.MethodPost, f.URL()+MessagesPath, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		return res
	}

	t.Run("stream", func(t *testing.T) {
		res := post(`{"model":"claude-x","stream":true,"messages":[]}`)
		defer res.Body.Close()
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
		assert.Equal(t, "1", res.Header.Get("x-fake"))
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var names []string
		for _, m := range regexp.MustCompile(`(?m)^event: (\w+)$`).FindAllStringSubmatch(string(raw), -1) {
			names = append(names, m[1])
		}
		assert.Equal(t, []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"}, names)
		assert.Contains(t, string(raw), `"text":"hello from the fake"`)
		assert.Contains(t, string(raw), `"model":"claude-x"`)
		assert.Contains(t, string(raw), `"stop_reason":"end_turn"`)
	})
	t.Run("message", func(t *testing.T) {
		res := post(`{"model":"claude-y","messages":[]}`)
		defer res.Body.Close()
		assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
		var msg struct {
			Type    string `json:"type"`
			Model   string `json:"model"`
			Content []struct {
				Type, Text string
			} `json:"content"`
			StopReason string `json:"stop_reason"`
		}
		require.NoError(t, json.NewDecoder(res.Body).Decode(&msg))
		assert.Equal(t, "message", msg.Type)
		assert.Equal(t, "claude-y", msg.Model)
		require.Len(t, msg.Content, 1)
		assert.Equal(t, "hello from the fake", msg.Content[0].Text)
		assert.Equal(t, "end_turn", msg.StopReason)
	})
	t.Run("other bodies are sent as is", func(t *testing.T) {
		assert.False(t, writeMessagesReply(nil, Recorded{}, Response{Body: map[string]any{"$messages": 1, "other": 2}}))
		assert.False(t, writeMessagesReply(nil, Recorded{}, Response{Body: "event: x"}))
	})
}
