package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/textproto"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun_dispatch(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"no arguments prints usage", nil, 2, "", "Usage: acctpool <command>"},
		{"help", []string{"help"}, 0, "  serve ", ""},
		{"--help", []string{"--help"}, 0, "  version ", ""},
		{"help for serve", []string{"help", "serve"}, 0, "Usage: acctpool serve [flags]", ""},
		{"help for unknown", []string{"help", "nope"}, 2, "", `no help for unknown command "nope"`},
		{"version", []string{"version"}, 0, "acctpool ", ""},
		{"--version", []string{"--version"}, 0, "acctpool ", ""},
		{"version with argument", []string{"version", "x"}, 2, "", `unexpected argument "x"`},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"serve --help", []string{"serve", "--help"}, 0, "--framing MODE", ""},
		{"serve --version", []string{"serve", "--version"}, 0, "acctpool ", ""},
		{"serve bad flag", []string{"serve", "--nope"}, 2, "", "Try: acctpool serve --help"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, bytes.NewReader(nil), &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stderr: %s", stderr.String())
			assert.Contains(t, stdout.String(), tc.stdout)
			assert.Contains(t, stderr.String(), tc.stderr)
		})
	}
}

// TestRun_serve speaks JSON-RPC to `acctpool serve` over pipes and checks
// that the resolved paths are logged at info level.
func TestRun_serve(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "anthropic-auth.json")
	state := filepath.Join(dir, "anthropic-auth-state.json")
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"serve", "--config", config, "--state", state}, inR, outW, &stderr)
		outW.Close()
	}()
	r := bufio.NewReader(outR)
	answers := make(chan string, 2)
	go func() {
		for {
			hdr, err := textproto.NewReader(r).ReadMIMEHeader()
			if err != nil {
				return
			}
			n, _ := strconv.Atoi(hdr.Get("Content-Length"))
			body := make([]byte, n)
			if _, err := io.ReadFull(r, body); err != nil {
				return
			}
			answers <- string(body)
		}
	}()
	send := func(msg string) {
		_, err := fmt.Fprintf(inW, "Content-Length: %d\r\n\r\n%s", len(msg), msg)
		require.NoError(t, err)
	}
	answer := func() string {
		select {
		case a := <-answers:
			return a
		case <-time.After(20 * time.Second):
			t.Fatal("no answer from acctpool serve")
		}
		return ""
	}
	send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1.0","clientInfo":{"name":"t"}}}`)
	assert.Contains(t, answer(), `"name":"acctpool"`)
	send(`{"jsonrpc":"2.0","id":2,"method":"shutdown"}`)
	assert.JSONEq(t, `{"jsonrpc":"2.0","id":2,"result":null}`, answer())
	send(`{"jsonrpc":"2.0","method":"exit"}`)
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return")
	}
	inW.Close()
	logs := stderr.String()
	assert.Contains(t, logs, "level=INFO msg=starting")
	assert.Contains(t, logs, "config="+config)
	assert.Contains(t, logs, "state="+state)
}
