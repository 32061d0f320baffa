package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/internal/stdioclient"
	"github.com/acctpool/acctpool/internal/syncbuf"
)

// guard bounds every wait: a deadlock guard, never a timing assertion.
const guard = time.Minute

// serverBin is the stdio-server binary built once for the spawned tests.
var serverBin string

func TestMain(m *testing.M) {
	// Re-executed as the server itself (the stray-print test): serve, with
	// strays printed after stdout is claimed.
	if os.Getenv("ACCTPOOL_TEST_SERVE") == "1" {
		testHookStdoutClaimed = func() {
			fmt.Println("stray fmt.Println")
			os.Stdout.WriteString("stray os.Stdout write\n")
			syscall.Write(1, []byte("stray write to fd 1\n"))
		}
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "stdio-server-test")
	if err != nil {
		panic(err)
	}
	serverBin = filepath.Join(dir, "stdio-server")
	build := exec.Command("go", "build", "-o", serverBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("build stdio-server: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer is a goroutine-safe bytes.Buffer (one helper for all).
type syncBuffer = syncbuf.Buffer

// proc is a spawned server and a client on its pipes.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *syncBuffer // everything the server wrote to stdout
	stderr *syncBuffer
	*stdioclient.Client
	exited chan struct{}
}

func spawnCmd(t *testing.T, cmd *exec.Cmd, framing string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: cmd, stdout: new(syncBuffer), stderr: new(syncBuffer), exited: make(chan struct{})}
	var err error
	p.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	p.Client = stdioclient.New(io.TeeReader(out, p.stdout), p.stdin, framing)
	go func() {
		<-p.Client.Done()
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(guard):
			cmd.Process.Kill()
			t.Error("server did not exit after stdin closed")
		}
		if t.Failed() {
			t.Logf("server stderr:\n%s", p.stderr.String())
		}
	})
	return p
}

func configArgs(t *testing.T) []string {
	dir := t.TempDir()
	return []string{"--config", filepath.Join(dir, "anthropic-auth.json"), "--state", filepath.Join(dir, "anthropic-auth-state.json")}
}

func spawn(t *testing.T, framing string, args ...string) *proc {
	t.Helper()
	args = append(append(configArgs(t), "--framing", framing), args...)
	return spawnCmd(t, exec.Command(serverBin, args...), framing)
}

func (p *proc) call(method string, params any) stdioclient.Message {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	m, err := p.Call(ctx, method, params)
	require.NoError(p.t, err, "call %s", method)
	return m
}

func (p *proc) initialize(extra map[string]any) {
	p.t.Helper()
	params := map[string]any{"protocolVersion": "1.0", "clientInfo": map[string]any{"name": "test", "version": "0"}}
	for k, v := range extra {
		params[k] = v
	}
	m := p.call("initialize", params)
	require.Nil(p.t, m.Error)
}

func (p *proc) alive() {
	p.t.Helper()
	m := p.call("ping", nil)
	require.Nil(p.t, m.Error)
	require.JSONEq(p.t, `{}`, string(m.Result))
}

func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.exited:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(guard):
		p.t.Fatal("server did not exit")
	}
	return -1
}

func (p *proc) unmatched() stdioclient.Message {
	p.t.Helper()
	select {
	case m := <-p.Unmatched():
		return m
	case <-time.After(guard):
		p.t.Fatal("no answer to the malformed input")
	}
	return stdioclient.Message{}
}

func requireCode(t *testing.T, m stdioclient.Message, code int64) {
	t.Helper()
	require.NotNil(t, m.Error, "want error %d, got %s", code, m.Result)
	require.Equal(t, code, m.Error.Code, m.Error.Message)
}

func TestRun_flags(t *testing.T) {
	cases := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"version", []string{"--version"}, 0, "acctpool ", ""},
		{"help", []string{"--help"}, 0, "Usage: stdio-server", ""},
		{"short help", []string{"-h"}, 0, "--framing", ""},
		{"unknown flag", []string{"--nope"}, 2, "", "Try: stdio-server --help"},
		{"bad framing", []string{"--framing", "xml"}, 2, "", `unknown framing "xml"`},
		{"bad clock", []string{"--clock", "fast"}, 2, "", `unknown clock "fast"`},
		{"bad log level", []string{"--log-level", "loud"}, 2, "", `unknown level "loud"`},
		{"stray argument", []string{"bogus"}, 2, "", `unexpected argument "bogus"`},
		{"serve word accepted", []string{"serve", "--version"}, 0, "acctpool ", ""},
		{"serve word only first", []string{"--version", "serve"}, 2, "", `unexpected argument "serve"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, bytes.NewReader(nil), &stdout, &stderr)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stdout.String(), tc.stdout)
			assert.Contains(t, stderr.String(), tc.stderr)
		})
	}
}

func TestRun_servesOverPipes(t *testing.T) {
	for _, framing := range []string{"lsp", "ndjson"} {
		t.Run(framing, func(t *testing.T) {
			t.Setenv("ACCTPOOL_FRAMING", framing) // the env equivalent of --framing
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			var stderr syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- run(configArgs(t), inR, outW, &stderr)
				outW.Close()
			}()
			c := stdioclient.New(outR, inW, framing)
			ctx, cancel := context.WithTimeout(context.Background(), guard)
			defer cancel()
			m, err := c.Call(ctx, "initialize", map[string]any{"protocolVersion": "1.0", "clientInfo": map[string]any{"name": "t"}})
			require.NoError(t, err)
			require.Nil(t, m.Error)
			m, err = c.Call(ctx, "shutdown", nil)
			require.NoError(t, err)
			require.Nil(t, m.Error)
			require.NoError(t, c.Notify("exit", nil))
			select {
			case code := <-done:
				assert.Equal(t, 0, code)
			case <-ctx.Done():
				t.Fatal("run did not return")
			}
			inW.Close()
			assert.Contains(t, stderr.String(), "initialize", "logs go to stderr")
		})
	}
}
