package conformance

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// MessagesReply is a scripted answer of the Messages API in Anthropic's own
// format. In a case (or a fakeanthropic script) it is the response body
// {"$messages": {"text": "..."}}: the fake answers a request whose JSON body
// has "stream": true with the event stream (message_start,
// content_block_start, ping, content_block_delta, content_block_stop,
// message_delta, message_stop) and any other request with one message
// object, both carrying Text as the assistant's reply and the request's
// model. Status and headers of the exchange apply as usual.
type MessagesReply struct {
	Text string `json:"text"`
	// StopReason defaults to "end_turn".
	StopReason string `json:"stopReason,omitempty"`
}

// messagesReplyOf returns the MessagesReply a response body asks for.
func messagesReplyOf(body any) (MessagesReply, bool) {
	m, ok := body.(map[string]any)
	if !ok || len(m) != 1 {
		return MessagesReply{}, false
	}
	raw, ok := m["$messages"]
	if !ok {
		return MessagesReply{}, false
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return MessagesReply{}, false
	}
	var r MessagesReply
	if err := json.Unmarshal(b, &r); err != nil {
		return MessagesReply{}, false
	}
	return r, true
}

// writeMessagesReply answers rec with the reply resp asks for, as a stream
// or a message per the request's "stream" field. It reports false, writing
// nothing, when resp is not a MessagesReply.
func writeMessagesReply(w http.ResponseWriter, rec Recorded, resp Response) bool {
	reply, ok := messagesReplyOf(resp.Body)
	if !ok || resp.Network {
		return false
	}
	body, _ := rec.Body.(map[string]any)
	model, _ := body["model"].(string)
	if model == "" {
		model = "claude-fake"
	}
	stop := reply.StopReason
	if stop == "" {
		stop = "end_turn"
	}
	id := fmt.Sprintf("msg_fake_%d", len(reply.Text))
	usage := map[string]any{"input_tokens": 10, "output_tokens": len(strings.Fields(reply.Text)) + 1}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	stream, _ := body["stream"].(bool)
	if !stream {
		w.Header().Set("Content-Type", "application/json")
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": model,
			"content":     []any{map[string]any{"type": "text", "text": reply.Text}},
			"stop_reason": stop, "stop_sequence": nil, "usage": usage,
		})
		return true
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	flusher, _ := w.(http.Flusher)
	event := func(name string, data map[string]any) {
		b, _ := json.Marshal(data)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": map[string]any{"input_tokens": 10, "output_tokens": 1},
	}})
	event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
	event("ping", map[string]any{"type": "ping"})
	event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": reply.Text}})
	event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	event("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": usage["output_tokens"]}})
	event("message_stop", map[string]any{"type": "message_stop"})
	return true
}
