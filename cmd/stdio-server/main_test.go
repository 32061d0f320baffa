package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/cmd/stdio-server/internal/stdioclient"
	"github.com/acctpool/acctpool/core"
)

// guard bounds every wait: a deadlock guard, never a timing assertion.
const guard = 20 * time.Second

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

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

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
		{"stray argument", []string{"serve"}, 2, "", `unexpected argument "serve"`},
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

func TestResolvePaths_piHost(t *testing.T) {
	t.Setenv("PI_ANTHROPIC_AUTH_FILE", "")
	t.Setenv("PI_AGENT_DIR", "/agent")
	t.Setenv("OPENCODE_ANTHROPIC_AUTH_STATE_FILE", "")
	t.Setenv("PI_ANTHROPIC_AUTH_ROUTING_STATE_FILE", "")
	c, err := parseFlags([]string{"--host", "pi"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, core.HostPi, c.host)
	assert.Equal(t, core.Paths{Config: "/agent/anthropic-auth.json", State: "/agent/anthropic-auth-state.json", RoutingState: "/agent/anthropic-auth-routing-state.json"}, c.paths)
	t.Setenv("ACCTPOOL_HOST", "pi")
	c, err = parseFlags([]string{"--config", "/f/anthropic-auth.json"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "/f/anthropic-auth-state.json", c.paths.State, "a --config wins over the pi variables")
	_, err = parseFlags([]string{"--host", "vscode"}, io.Discard)
	assert.ErrorContains(t, err, "--host")
}

func TestResolvePaths(t *testing.T) {
	home, err := os.UserHomeDir()
	require.NoError(t, err)
	cases := []struct {
		name string
		env  map[string]string
		in   core.Paths
		want core.Paths
	}{
		{"auth file env", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/x/auth.json", "OPENCODE_CONFIG_DIR": "/ignored"}, core.Paths{},
			core.Paths{Config: "/x/auth.json", State: "/x/auth.json.state.json", RoutingState: "/x/auth-routing-state.json"}},
		{"config dir env", map[string]string{"OPENCODE_CONFIG_DIR": "/c", "XDG_CONFIG_HOME": "/ignored"}, core.Paths{},
			core.Paths{Config: "/c/anthropic-auth.json", State: "/c/anthropic-auth-state.json", RoutingState: "/c/anthropic-auth-routing-state.json"}},
		{"xdg", map[string]string{"XDG_CONFIG_HOME": "/xdg"}, core.Paths{},
			core.Paths{Config: "/xdg/opencode/anthropic-auth.json", State: "/xdg/opencode/anthropic-auth-state.json", RoutingState: "/xdg/opencode/anthropic-auth-routing-state.json"}},
		{"home", nil, core.Paths{},
			core.Paths{Config: filepath.Join(home, ".config/opencode/anthropic-auth.json"), State: filepath.Join(home, ".config/opencode/anthropic-auth-state.json"),
				RoutingState: filepath.Join(home, ".config/opencode/anthropic-auth-routing-state.json")}},
		{"flags win", map[string]string{"OPENCODE_ANTHROPIC_AUTH_FILE": "/x/auth.json"}, core.Paths{Config: "/f/a.json", State: "/g/s.json"},
			core.Paths{Config: "/f/a.json", State: "/g/s.json", RoutingState: "/f/a-routing-state.json"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OPENCODE_ANTHROPIC_AUTH_FILE", "OPENCODE_CONFIG_DIR", "XDG_CONFIG_HOME", "OPENCODE_ANTHROPIC_AUTH_STATE_FILE", "OPENCODE_ANTHROPIC_AUTH_ROUTING_STATE_FILE"} {
				t.Setenv(k, tc.env[k])
			}
			got, err := resolvePaths(core.HostOpenCode, tc.in)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
