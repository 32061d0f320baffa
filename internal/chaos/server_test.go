package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/internal/stdioclient"
	"github.com/acctpool/acctpool/internal/syncbuf"
)

// guard bounds every wait: a deadlock guard, never a timing assertion.
const guard = time.Minute

// server is one running server process and a client on its pipes.
type server struct {
	inc    string // incarnation: "s2.3" is slot 2's third process
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncbuf.Buffer
	*stdioclient.Client
	exited chan struct{}
	notes  *noteLog
}

// noteLog records the accounts/changed notifications a server sent: when
// each account was last named, and a channel closed at every one.
type noteLog struct {
	mu   sync.Mutex
	last map[string]time.Time
	ch   chan struct{}
}

func (n *noteLog) add(accounts []string, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, a := range accounts {
		n.last[a] = at
	}
	close(n.ch)
	n.ch = make(chan struct{})
}

// next returns a channel closed at the next notification.
func (n *noteLog) next() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// lastFor is when account was last named by accounts/changed.
func (n *noteLog) lastFor(account string) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.last[account]
}

// serverEnv is the environment of a server whose home is home: none of
// this process's acctpool, OpenCode or Pi settings leak in.
func serverEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "XDG_CONFIG_HOME", strings.HasPrefix(k, "ACCTPOOL_"), strings.HasPrefix(k, "OPENCODE_"), strings.HasPrefix(k, "PI_"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}

// start spawns a server and initializes it.
func start(bin, inc, home string, args []string) (*server, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = serverEnv(home)
	s := &server{inc: inc, cmd: cmd, stderr: new(syncbuf.Buffer), exited: make(chan struct{}), notes: &noteLog{last: map[string]time.Time{}, ch: make(chan struct{})}}
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.Client = stdioclient.New(out, s.stdin, "lsp")
	go func() {
		<-s.Client.Done()
		_ = cmd.Wait()
		close(s.exited)
	}()
	go s.readNotes()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := s.call(ctx, "initialize", map[string]any{"protocolVersion": "1.0", "clientInfo": map[string]any{"name": "chaos", "version": "0"}}); err != nil {
		s.kill()
		return nil, fmt.Errorf("initialize %s: %w\n%s", inc, err, s.stderr.String())
	}
	if err := s.Notify("initialized", nil); err != nil {
		s.kill()
		return nil, err
	}
	return s, nil
}

// readNotes drains the notifications (the client's queue must never fill).
func (s *server) readNotes() {
	for {
		select {
		case m := <-s.Notifications():
			if m.Method != "accounts/changed" {
				continue
			}
			var p struct{ Accounts []string }
			if json.Unmarshal(m.Params, &p) == nil {
				s.notes.add(p.Accounts, time.Now())
			}
		case <-s.Client.Done():
			return
		}
	}
}

// errServerGone is a call to a server that died under it.
var errServerGone = errors.New("server gone")

// call makes one request; an RPC error comes back as *stdioclient.Error.
func (s *server) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	m, err := s.Call(ctx, method, params)
	if err != nil {
		select {
		case <-s.Client.Done():
			return nil, errServerGone
		default:
		}
		return nil, err
	}
	if m.Error != nil {
		return nil, m.Error
	}
	return m.Result, nil
}

// dead reports whether the process has exited.
func (s *server) dead() bool {
	select {
	case <-s.exited:
		return true
	case <-s.Client.Done():
		return true // its pipes closed: it is on its way out
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone (reaped), so a
// successor can prove it dead.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	s.waitExit()
}

func (s *server) waitExit() bool {
	select {
	case <-s.exited:
		return true
	case <-time.After(guard):
		return false
	}
}

// stop ends the server as a host does (stdin closed) and waits.
func (s *server) stop() bool {
	_ = s.stdin.Close()
	return s.waitExit()
}

// accountView is the part of an AccountView the run reads.
type accountView struct {
	ID              string `json:"id"`
	LastRefreshedAt int64  `json:"lastRefreshedAt"`
	NeedsRelogin    bool   `json:"needsRelogin"`
}

func (s *server) account(ctx context.Context, method, id string) (accountView, error) {
	var v accountView
	raw, err := s.call(ctx, method, map[string]any{"id": id})
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(raw, &v)
}
