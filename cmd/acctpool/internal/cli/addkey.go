package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/acctpool/acctpool/core"
	"github.com/acctpool/acctpool/core/record"
	"github.com/acctpool/acctpool/core/secret"
)

const addKeyUsage = `add-key --base-url URL [--label NAME] [--auth-header x-api-key|authorization-bearer] [file flags]

Adds an API-key route. The key is read from stdin (one line), with echo off
when stdin is a terminal; it is never taken from the command line, where
other users and the shell history could see it. Routing uses the route only
when main's OAuth quota is confirmed spent.`

// AddKey is `acctpool add-key`.
func AddKey(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	var c common
	fs := newFlags("add-key", stderr, addKeyUsage)
	c.register(fs)
	baseURL := fs.String("base-url", "", "where requests go: <URL>/v1/messages (required)")
	label := fs.String("label", "", "label of the route")
	header := fs.String("auth-header", "x-api-key", "x-api-key or authorization-bearer")
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && (name == "key" || name == "api-key") {
			return fail(stderr, "add-key", usageErr("the key is never taken from the command line; pipe it on stdin or type it at the prompt"))
		}
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "add-key", usageErr("unexpected argument (the key is read from stdin, never from the command line)"))
	}
	if strings.TrimSpace(*baseURL) == "" {
		return fail(stderr, "add-key", usageErr("--base-url is required"))
	}
	if *header != "x-api-key" && *header != "authorization-bearer" {
		return fail(stderr, "add-key", usageErr("--auth-header %q: want x-api-key or authorization-bearer", *header))
	}
	eng, _, closeStore, err := c.engine(env, stderr)
	if err != nil {
		return fail(stderr, "add-key", err)
	}
	defer closeStore()
	ctx := context.Background()
	if l := strings.TrimSpace(*label); l != "" {
		p, err := loadPool(ctx, eng, eng.Clock().Now())
		if err != nil {
			return fail(stderr, "add-key", err)
		}
		for _, a := range p.Accounts {
			if a.Label == l {
				return fail(stderr, "add-key", usageErr("an account labelled %q exists (%s); pick another --label", l, a.ID))
			}
		}
	}
	if isTerminal(stdin) {
		fmt.Fprint(stderr, "API key (not shown): ")
	}
	key, err := readSecretLine(stdin)
	if isTerminal(stdin) {
		fmt.Fprintln(stderr)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		if err != nil && err != io.EOF {
			return fail(stderr, "add-key", err)
		}
		return fail(stderr, "add-key", usageErr("no key on stdin"))
	}
	v, err := eng.AddAccount(ctx, core.AccountSpec{
		Type: record.AccountAPI, Label: strings.TrimSpace(*label), BaseURL: *baseURL, AuthHeader: *header, APIKey: secret.Secret(key),
	})
	if err != nil {
		return fail(stderr, "add-key", err)
	}
	fmt.Fprintf(stdout, "Added API-key route %s (%s).\n", nameOf(v), v.ID)
	return exitOK
}
