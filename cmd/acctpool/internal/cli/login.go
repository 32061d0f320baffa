package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os/exec"
	"runtime"
	"strings"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
)

const loginUsage = `login [--label NAME] [--replace ID] [--mode max|console] [--no-browser] [file flags]

Adds an OAuth fallback account through PKCE: prints the authorize URL (and
opens it when a browser is available), then reads the code the page shows
after sign-in from stdin: the code, code#state, or the whole callback URL.
--replace ID logs an existing account in again, keeping its id, order and
label: the fix for an account that needs a re-login.`

// Login is `acctpool login`.
func Login(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	var c common
	fs := newFlags("login", stderr, loginUsage)
	c.register(fs)
	label := fs.String("label", "", "label of the new account (with --replace: a new label for it)")
	replace := fs.String("replace", "", "id or label of the account to log in again")
	mode := fs.String("mode", "max", "max (Claude subscription) or console (API console)")
	noBrowser := fs.Bool("no-browser", false, "only print the URL")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "login", usageErr("unexpected argument %q", fs.Arg(0)))
	}
	if *mode != "max" && *mode != "console" {
		return fail(stderr, "login", usageErr("--mode %q: want max or console", *mode))
	}
	eng, _, closeStore, err := c.engine(env, stderr)
	if err != nil {
		return fail(stderr, "login", err)
	}
	defer closeStore()
	ctx := context.Background()
	target, newLabel, err := loginTarget(ctx, eng, strings.TrimSpace(*replace), strings.TrimSpace(*label))
	if err != nil {
		return fail(stderr, "login", err)
	}
	start, err := eng.LoginStart(ctx, *mode)
	if err != nil {
		return fail(stderr, "login", err)
	}
	fmt.Fprintf(stdout, "Open this URL and sign in with the account to add:\n\n  %s\n\n", start.URL)
	if !*noBrowser {
		if open := browserOpener(env); open != nil {
			if err := open(start.URL); err == nil {
				fmt.Fprintln(stdout, "(opened in your browser)")
			}
		}
	}
	fmt.Fprint(stdout, "Paste the code the page shows (code, code#state, or the callback URL): ")
	line, err := readLine(stdin)
	fmt.Fprintln(stdout)
	if err != nil && strings.TrimSpace(line) == "" {
		return fail(stderr, "login", usageErr("no code was pasted"))
	}
	authCode, err := parseAuthCode(line, start.State)
	if err != nil {
		return fail(stderr, "login", err)
	}
	if target != nil && newLabel != target.Label {
		// AddAccount replaces the account whose label matches, so the
		// target carries the label the login will use.
		l := newLabel
		if _, err := eng.UpdateAccount(ctx, core.AccountPatch{ID: target.ID, Label: &l}); err != nil {
			return fail(stderr, "login", err)
		}
	}
	v, err := eng.LoginFinish(ctx, authCode, start.State, newLabel)
	if err != nil {
		return fail(stderr, "login", err)
	}
	name := nameOf(v)
	if target != nil {
		fmt.Fprintf(stdout, "Logged %s (%s) in again; its refresh error is cleared.\n", name, v.ID)
	} else {
		fmt.Fprintf(stdout, "Added %s (%s) as an OAuth fallback.\n", name, v.ID)
	}
	return exitOK
}

// loginTarget finds the account --replace names and the label the login
// uses. A new account may not take the label of an existing one, since
// that would silently replace it.
func loginTarget(ctx context.Context, eng *core.Engine, replace, label string) (*account, string, error) {
	p, err := loadPool(ctx, eng, eng.Clock().Now())
	if err != nil {
		return nil, "", err
	}
	var target *account
	if replace != "" {
		for i := range p.Accounts {
			if a := &p.Accounts[i]; a.Kind != "main" && (a.ID == replace || a.Label == replace) {
				target = a
				break
			}
		}
		switch {
		case replace == core.MainAccountID:
			return nil, "", usageErr("the main account's tokens belong to the host; log in there again (opencode: opencode auth login)")
		case target == nil:
			return nil, "", fmt.Errorf("--replace %q: %w", replace, core.ErrNoAccount)
		case target.Kind != string(record.AccountOAuth):
			return nil, "", usageErr("--replace %q is an API-key route; remove it and use acctpool add-key", replace)
		}
		if label == "" {
			label = target.Label
		}
		if label == "" {
			return nil, "", usageErr("account %s has no label; give it one with --label NAME", target.ID)
		}
	}
	if label != "" {
		for _, a := range p.Accounts {
			if a.Label == label && (target == nil || a.ID != target.ID) {
				return nil, "", usageErr("an account labelled %q exists (%s); use --replace %s to log it in again, or pick another --label", label, a.ID, a.ID)
			}
		}
	}
	return target, label, nil
}

// parseAuthCode reads what the user pasted: a code, code#state, or the
// callback URL with code and state parameters. A state that is not the
// started login's is refused, so a code from another login is not used.
func parseAuthCode(pasted, state string) (string, error) {
	pasted = strings.TrimSpace(pasted)
	code, got := pasted, ""
	if strings.HasPrefix(pasted, "http://") || strings.HasPrefix(pasted, "https://") {
		u, err := url.Parse(pasted)
		if err != nil {
			return "", usageErr("the pasted callback URL does not parse")
		}
		code, got = u.Query().Get("code"), u.Query().Get("state")
		if code == "" && u.Fragment != "" {
			code = u.Fragment
		}
	} else if c, s, ok := strings.Cut(pasted, "#"); ok {
		code, got = c, s
	}
	code = strings.TrimSpace(code)
	if code == "" {
		return "", usageErr("no authorization code in what was pasted")
	}
	if got != "" && got != state {
		return "", fmt.Errorf("the pasted code belongs to another login (its state differs): %w", core.ErrLoginState)
	}
	return code, nil
}

// browserOpener returns a function that opens a URL in the user's
// browser, or nil when there is none: on Linux and BSD only with a DISPLAY
// or WAYLAND_DISPLAY and xdg-open, on macOS with open.
func browserOpener(env func(string) string) func(string) error {
	var name string
	switch runtime.GOOS {
	case "darwin":
		name = "open"
	case "linux", "freebsd", "netbsd", "openbsd":
		if env("DISPLAY") == "" && env("WAYLAND_DISPLAY") == "" {
			return nil
		}
		name = "xdg-open"
	default:
		return nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil
	}
	return func(u string) error {
		cmd := exec.Command(path, u)
		if err := cmd.Start(); err != nil {
			return err
		}
		go cmd.Wait()
		return nil
	}
}
