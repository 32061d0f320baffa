package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acctpool/acctpool/internal/stdioclient"
)

var framings = []string{"lsp", "ndjson"}

func TestBinary_lifecycle(t *testing.T) {
	for _, f := range framings {
		t.Run(f, func(t *testing.T) {
			p := spawn(t, f)
			requireCode(t, p.call("ping", nil), -32002)
			requireCode(t, p.call("accounts/list", nil), -32002)
			p.initialize(nil)
			requireCode(t, p.call("initialize", map[string]any{"protocolVersion": "1.0", "clientInfo": map[string]any{"name": "again"}}), -32600)
			// No `initialized`: requests are answered all the same.
			p.alive()
			m := p.call("errors/classify", map[string]any{"source": "token", "status": 403})
			require.Nil(t, m.Error)
			assert.JSONEq(t, `{"class":"org_policy","reason":"403 forbidden","decidedBy":"builtin"}`, string(m.Result))
			require.NoError(t, p.Notify("initialized", nil))
			p.alive()
			m = p.call("shutdown", nil)
			require.Nil(t, m.Error)
			assert.Equal(t, "null", string(m.Result))
			requireCode(t, p.call("ping", nil), -32600)
			require.NoError(t, p.Notify("exit", nil))
			assert.Equal(t, 0, p.exitCode())
		})
	}
}

func TestBinary_exit(t *testing.T) {
	t.Run("exit without shutdown is 1", func(t *testing.T) {
		p := spawn(t, "lsp")
		p.initialize(nil)
		require.NoError(t, p.Notify("exit", nil))
		assert.Equal(t, 1, p.exitCode())
	})
	t.Run("stdin EOF is 0", func(t *testing.T) {
		p := spawn(t, "ndjson")
		p.initialize(nil)
		require.NoError(t, p.stdin.Close())
		assert.Equal(t, 0, p.exitCode())
	})
	t.Run("SIGTERM is 0", func(t *testing.T) {
		p := spawn(t, "lsp")
		p.initialize(nil)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		assert.Equal(t, 0, p.exitCode())
	})
	t.Run("processId death is 0", func(t *testing.T) {
		host := exec.Command("sleep", "60")
		require.NoError(t, host.Start())
		p := spawn(t, "lsp")
		p.initialize(map[string]any{"processId": host.Process.Pid})
		p.alive()
		require.NoError(t, host.Process.Kill())
		_ = host.Wait()
		assert.Equal(t, 0, p.exitCode())
	})
}

func TestBinary_malformedInput(t *testing.T) {
	big := `{"jsonrpc":"2.0","id":1007,"method":"ping","params":{"pad":"` + strings.Repeat("x", 10_000_000) + `"}}`
	cases := []struct {
		name string
		body string
		id   string
		code int64
	}{
		{"malformed JSON", `{"jsonrpc":"2.0","id":1000,`, "1000", -32700},
		{"not a request", `{"jsonrpc":"2.0","foo":1}`, "null", -32600},
		{"bad id", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, "null", -32600},
		{"batch", `[{"jsonrpc":"2.0","id":1001,"method":"ping"}]`, "null", -32600},
		{"unknown method", `{"jsonrpc":"2.0","id":1002,"method":"no/such"}`, "1002", -32601},
		{"unknown param", `{"jsonrpc":"2.0","id":1003,"method":"accounts/get","params":{"id":"a","bogus":1}}`, "1003", -32602},
		{"missing param", `{"jsonrpc":"2.0","id":1004,"method":"accounts/remove","params":{}}`, "1004", -32602},
		{"bad source", `{"jsonrpc":"2.0","id":1005,"method":"errors/classify","params":{"source":"disk","status":1}}`, "1005", -32602},
		{"10 MB frame", big, "1007", -32600},
	}
	for _, f := range framings {
		t.Run(f, func(t *testing.T) {
			p := spawn(t, f)
			p.initialize(nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					p.t = t
					require.NoError(t, p.SendFrame([]byte(tc.body)))
					m := p.unmatched()
					assert.Equal(t, tc.id, string(m.ID))
					requireCode(t, m, tc.code)
					if tc.code == -32602 {
						assert.Contains(t, m.Error.Message, "field")
					}
					p.alive()
				})
			}
		})
	}
}

// TestBinary_cancelRequest cancels a login whose token exchange hangs on a
// local fake endpoint: the answer is -32800 and the upstream request's
// context ends too.
func TestBinary_cancelRequest(t *testing.T) {
	arrived := make(chan struct{}, 1)
	gone := make(chan struct{}, 1)
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // the server notices a closed connection only once the body is read
		arrived <- struct{}{}
		<-r.Context().Done()
		gone <- struct{}{}
	}))
	defer token.Close()
	for _, f := range framings {
		t.Run(f, func(t *testing.T) {
			p := spawn(t, f, "--token-url", token.URL)
			p.initialize(nil)
			m := p.call("accounts/login/start", nil)
			require.Nil(t, m.Error)
			var start struct{ State string }
			require.NoError(t, json.Unmarshal(m.Result, &start))
			ch, err := p.Go("accounts/login/finish", map[string]any{"code": "abc", "state": start.State})
			require.NoError(t, err)
			id := p.ID()
			select {
			case <-arrived:
			case m := <-ch:
				t.Fatalf("login finished before reaching the token endpoint: %+v", m.Error)
			case <-time.After(guard):
				t.Fatal("the token endpoint was never called")
			}
			p.alive() // the read loop is free meanwhile
			require.NoError(t, p.Notify("$/cancelRequest", map[string]any{"id": id}))
			select {
			case m := <-ch:
				requireCode(t, m, -32800)
			case <-time.After(guard):
				t.Fatal("the cancelled request was never answered")
			}
			select {
			case <-gone:
			case <-time.After(guard):
				t.Fatal("the upstream request was not cancelled")
			}
		})
	}
}

func TestBinary_concurrentRequests(t *testing.T) {
	for _, f := range framings {
		t.Run(f, func(t *testing.T) {
			p := spawn(t, f)
			p.initialize(nil)
			var wg sync.WaitGroup
			for i := 0; i < 64; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					status := 400 + i
					m, err := p.Call(context.Background(), "errors/classify", map[string]any{"source": "messages", "status": status})
					if !assert.NoError(t, err) || !assert.Nil(t, m.Error) {
						return
					}
					assert.Contains(t, string(m.Result), fmt.Sprint(status), "answer matched to the wrong request")
					m, err = p.Call(context.Background(), "ping", nil)
					if assert.NoError(t, err) {
						assert.JSONEq(t, `{}`, string(m.Result))
					}
				}()
			}
			wg.Wait()
		})
	}
}

// TestBinary_strayPrintsCannotCorruptFraming re-executes this test binary
// as the server with prints to os.Stdout and fd 1 right after startup.
func TestBinary_strayPrintsCannotCorruptFraming(t *testing.T) {
	for _, f := range framings {
		t.Run(f, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], append(configArgs(t), "--framing", f)...)
			cmd.Env = append(os.Environ(), "ACCTPOOL_TEST_SERVE=1")
			p := spawnCmd(t, cmd, f)
			p.initialize(nil)
			p.alive()
			require.NoError(t, p.stdin.Close())
			require.Equal(t, 0, p.exitCode())
			assert.NotContains(t, p.stdout.String(), "stray")
			for _, s := range []string{"stray fmt.Println", "stray os.Stdout write", "stray write to fd 1"} {
				assert.Contains(t, p.stderr.String(), s)
			}
		})
	}
}

// TestBinary_tokensNeverLeak plants tokens through accounts/add and
// accounts/setMain and checks that no answer, error or log line (at debug
// level) carries them. route/select is left out: handing the credential
// over is its job.
func TestBinary_tokensNeverLeak(t *testing.T) {
	secrets := []string{"sk-ant-oat01-PLANTEDaccess111", "sk-ant-ort01-PLANTEDrefresh222", "PLANTEDmainAccess333", "PLANTEDmainRefresh444", "sk-ant-api03-PLANTEDkey555"}
	token := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Echo everything back, as a hostile or buggy upstream might.
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"bad token %s %s"}`, secrets[1], secrets[3])
	}))
	defer token.Close()
	p := spawn(t, "lsp", "--log-level", "debug", "--token-url", token.URL, "--usage-url", token.URL, "--profile-url", token.URL)
	p.initialize(nil)
	require.NoError(t, p.Notify("initialized", nil))
	calls := []struct {
		method string
		params any
	}{
		{"accounts/add", map[string]any{"id": "fb1", "type": "oauth", "access": secrets[0], "refresh": secrets[1], "expires": 1}},
		{"accounts/add", map[string]any{"id": "api1", "type": "api", "apiKey": secrets[4], "baseURL": "http://127.0.0.1:1"}},
		{"accounts/setMain", map[string]any{"access": secrets[2], "refresh": secrets[3], "expires": 1}},
		{"accounts/list", nil},
		{"accounts/get", map[string]any{"id": "fb1"}},
		{"accounts/get", map[string]any{"id": "main"}},
		{"accounts/update", map[string]any{"id": "api1", "apiKey": secrets[4]}},
		{"accounts/refresh", map[string]any{"id": "fb1"}},
		{"accounts/refresh", map[string]any{"id": "main"}},
		{"accounts/refreshDue", nil},
		{"quota/get", nil},
		{"quota/refresh", map[string]any{"id": "fb1"}},
		{"quota/refreshDue", nil},
		{"errors/classify", map[string]any{"source": "token", "status": 400, "body": "invalid_grant " + secrets[1], "message": "Bearer " + secrets[0]}},
		{"accounts/add", map[string]any{"type": "oauth", "access": secrets[0], "bogus": secrets[1]}},
		{"accounts/setMain", map[string]any{"access": secrets[2], "refresh": 5, "expires": 1}},
	}
	for _, c := range calls {
		m := p.call(c.method, c.params)
		t.Logf("%s → error=%v", c.method, m.Error)
	}
	require.NoError(t, p.stdin.Close())
	p.exitCode()
	out, logs := p.stdout.String(), p.stderr.String()
	for _, s := range secrets {
		assert.NotContains(t, out, s, "a token reached stdout")
		assert.NotContains(t, logs, s, "a token reached stderr")
	}
}

var _ = stdioclient.Message{}
