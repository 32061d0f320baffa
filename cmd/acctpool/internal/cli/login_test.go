package cli

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTokenEndpoint answers authorization_code grants on 127.0.0.1 and
// records the requests.
type fakeTokenEndpoint struct {
	mu       sync.Mutex
	requests []map[string]string
	srv      *httptest.Server
	status   int
}

func newFakeTokenEndpoint(t *testing.T) *fakeTokenEndpoint {
	f := &fakeTokenEndpoint{status: 200}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.requests = append(f.requests, body)
		status := f.status
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if status != 200 {
			io.WriteString(w, `{"error":"invalid_grant","error_description":"bad code"}`)
			return
		}
		io.WriteString(w, `{"access_token":"sk-ant-oat01-NEWACCESS","refresh_token":"sk-ant-ort01-NEWREFRESH","expires_in":28800}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// signalWriter is stdout for a login: it tells the test when the prompt is
// printed, so the test pastes only after reading the URL.
type signalWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	prompt chan struct{}
	once   sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "Paste the code") {
		w.once.Do(func() { close(w.prompt) })
	}
	return n, err
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// login runs Login with paste computed from the printed authorize URL.
func login(t *testing.T, dir string, paste func(authorize *url.URL) string, args ...string) (int, string, string) {
	t.Helper()
	stdinR, stdinW := io.Pipe()
	out := &signalWriter{prompt: make(chan struct{})}
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- Login(args, stdinR, out, &errb, envFor(dir)) }()
	select {
	case <-out.prompt:
	case code := <-done:
		return code, out.String(), errb.String()
	}
	m := regexp.MustCompile(`(?m)^  (http\S+)$`).FindStringSubmatch(out.String())
	require.NotNil(t, m, "authorize URL not printed:\n%s", out.String())
	u, err := url.Parse(m[1])
	require.NoError(t, err)
	_, err = io.WriteString(stdinW, paste(u)+"\n")
	require.NoError(t, err)
	code := <-done
	stdinW.Close()
	return code, out.String(), errb.String()
}

func TestLoginEndToEnd(t *testing.T) {
	tok := newFakeTokenEndpoint(t)
	dir := copyFixture(t, "pool")
	args := []string{"--token-url", tok.srv.URL + "/v1/oauth/token", "--no-browser"}

	code, out, errOut := login(t, dir, func(u *url.URL) string {
		assert.Equal(t, "S256", u.Query().Get("code_challenge_method"))
		return "the-code#" + u.Query().Get("state")
	}, append(args, "--label", "fb4")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `Added fb4 \([0-9a-f-]{36}\) as an OAuth fallback\.`, out)
	require.Len(t, tok.requests, 1)
	assert.Equal(t, "authorization_code", tok.requests[0]["grant_type"])
	assert.Equal(t, "the-code", tok.requests[0]["code"])
	assert.NotEmpty(t, tok.requests[0]["code_verifier"])
	assert.NotContains(t, out+errOut, "NEWACCESS")
	assert.NotContains(t, out+errOut, "NEWREFRESH")

	state, err := os.ReadFile(filepath.Join(dir, "anthropic-auth-state.json"))
	require.NoError(t, err)
	assert.Contains(t, string(state), "sk-ant-ort01-NEWREFRESH", "the new tokens are stored")

	// --replace logs fb2 (needs re-login) in again: same id, order and
	// label, the refresh error gone.
	const fb2 = "7a9d4e2f-2222-4b0b-9d2e-0000000000f2"
	code, out, errOut = login(t, dir, func(u *url.URL) string {
		return "https://platform.claude.com/oauth/code/callback?code=code-2&state=" + u.Query().Get("state")
	}, append(args, "--replace", fb2)...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Logged fb2 ("+fb2+") in again")
	code, js, _ := call(Status, envFor(dir), "", "--now", fixtureNow, "--json")
	require.Equal(t, exitOK, code)
	var got statusJSON
	require.NoError(t, json.Unmarshal([]byte(js), &got))
	assert.Empty(t, got.Summary.NeedsRelogin)
	var labels []string
	for _, v := range got.Accounts {
		labels = append(labels, v.Label)
		if v.ID == fb2 {
			assert.False(t, v.NeedsRelogin)
			assert.Nil(t, v.LastRefreshError)
		}
	}
	assert.Equal(t, []string{"main", "fb1", "fb2", "fb3", "fb4", "work key"}, labels, "the replaced account keeps its place")

	// --replace with --label renames the account it logs in again.
	code, out, errOut = login(t, dir, func(*url.URL) string { return "code-3" }, append(args, "--replace", "fb2", "--label", "fb2-new")...)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "Logged fb2-new ("+fb2+") in again")
	code, out, _ = call(Accounts, envFor(dir), "", "list", "--now", fixtureNow)
	require.Equal(t, exitOK, code)
	assert.Regexp(t, `(?m)^2 +fb2-new +oauth +`+fb2+` +not usable: quota unknown`, out, "same place, new label, no longer needs a re-login")
	assert.NotContains(t, out, " fb2 ")
}

func TestBrowserOpenerNeedsADisplay(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the DISPLAY rule is the Linux and BSD one")
	}
	assert.Nil(t, browserOpener(func(string) string { return "" }), "no display, no browser")
}

func TestLoginRefusals(t *testing.T) {
	tok := newFakeTokenEndpoint(t)
	dir := copyFixture(t, "pool")
	args := []string{"--token-url", tok.srv.URL, "--no-browser"}
	cases := []struct {
		name  string
		args  []string
		paste func(*url.URL) string
		code  int
		err   string
	}{
		{"label taken", []string{"--label", "fb1"}, nil, exitUsage,
			`an account labelled "fb1" exists (5f0e2b1c-1111-4a0a-8c1d-0000000000f1); use --replace 5f0e2b1c-1111-4a0a-8c1d-0000000000f1 to log it in again, or pick another --label`},
		{"replace unknown", []string{"--replace", "nope"}, nil, exitNone, `--replace "nope": no such account`},
		{"replace main", []string{"--replace", "main"}, nil, exitUsage, "the main account's tokens belong to the host"},
		{"replace api route", []string{"--replace", "work-key"}, nil, exitUsage, "is an API-key route"},
		{"state of another login", nil, func(*url.URL) string { return "c#not-the-state" }, exitNone, "the pasted code belongs to another login"},
		{"empty paste", nil, func(*url.URL) string { return "" }, exitUsage, "no authorization code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			paste := tc.paste
			if paste == nil {
				paste = func(*url.URL) string { t.Fatal("no prompt expected"); return "" }
			}
			code, _, errOut := login(t, dir, paste, append(args, tc.args...)...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, errOut, tc.err)
		})
	}
	assert.Empty(t, tok.requests, "no refused login reaches the token endpoint")

	t.Run("token endpoint refuses the code", func(t *testing.T) {
		tok.mu.Lock()
		tok.status = 400
		tok.mu.Unlock()
		code, _, errOut := login(t, dir, func(*url.URL) string { return "bad" }, args...)
		assert.Equal(t, exitNone, code)
		assert.Contains(t, errOut, "acctpool login: ")
		assert.Contains(t, errOut, "400")
	})
}
