package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	json "github.com/goccy/go-json"

	"github.com/acctpool/acctpool/core"
)

const accountsUsage = `accounts <list|remove|enable|disable|move|reset-backoff> [args] [file flags]

  list [--json]            every account: id, label, type, position, state
  remove ID [--yes]        remove a fallback and its tokens (asks unless --yes)
  enable ID | disable ID   route to it again, or stop routing to it
  move ID POSITION         put a fallback at POSITION (1 = first)
  reset-backoff ID         clear its refresh and quota backoff ("main" allowed)
ID is an account id or label.`

// Accounts is `acctpool accounts`.
func Accounts(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "usage: acctpool %s\n", accountsUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return exitOK
		}
		return exitUsage
	}
	sub, rest := args[0], args[1:]
	var c common
	fs := newFlags("accounts "+sub, stderr, accountsUsage)
	c.register(fs)
	asJSON := fs.Bool("json", false, "list: print the accounts/list views as JSON")
	yes := fs.Bool("yes", false, "remove: do not ask")
	if code, ok := parseFlags(fs, interspersed(rest)); !ok {
		return code
	}
	pos := fs.Args()
	want := map[string]int{"list": 0, "remove": 1, "enable": 1, "disable": 1, "move": 2, "reset-backoff": 1}
	n, known := want[sub]
	if !known {
		return fail(stderr, "accounts", usageErr("unknown subcommand %q (want list, remove, enable, disable, move or reset-backoff)", sub))
	}
	if len(pos) != n {
		return fail(stderr, "accounts "+sub, usageErr("want %d argument(s), got %d", n, len(pos)))
	}
	eng, clock, closeStore, err := c.engine(env, stderr)
	if err != nil {
		return fail(stderr, "accounts "+sub, err)
	}
	defer closeStore()
	ctx := context.Background()
	switch sub {
	case "list":
		p, err := loadPool(ctx, eng, clock.Now())
		if err != nil {
			return fail(stderr, "accounts list", err)
		}
		if *asJSON {
			b, err := json.MarshalIndent(p.Views, "", "  ")
			if err != nil {
				return fail(stderr, "accounts list", err)
			}
			fmt.Fprintln(stdout, string(b))
			return exitOK
		}
		io.WriteString(stdout, renderAccountList(p))
		return exitOK
	case "remove":
		v, err := eng.GetAccount(ctx, pos[0])
		if err != nil {
			return fail(stderr, "accounts remove", err)
		}
		if v.ID == core.MainAccountID {
			return fail(stderr, "accounts remove", usageErr("the main account belongs to the host and cannot be removed"))
		}
		if !*yes {
			fmt.Fprintf(stdout, "Remove %s (%s)? Its tokens are deleted and cannot be recovered. [y/N] ", nameOf(v), v.ID)
			answer, _ := readLine(stdin)
			fmt.Fprintln(stdout)
			if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
				fmt.Fprintln(stdout, "Nothing removed.")
				return exitNone
			}
		}
		if err := eng.RemoveAccount(ctx, v.ID); err != nil {
			return fail(stderr, "accounts remove", err)
		}
		fmt.Fprintf(stdout, "Removed %s (%s).\n", nameOf(v), v.ID)
	case "enable", "disable":
		on := sub == "enable"
		v, err := eng.UpdateAccount(ctx, core.AccountPatch{ID: pos[0], Enabled: &on})
		if err != nil {
			return fail(stderr, "accounts "+sub, err)
		}
		fmt.Fprintf(stdout, "%s %s (%s).\n", map[bool]string{true: "Enabled", false: "Disabled"}[on], nameOf(v), v.ID)
	case "move":
		n, err := strconv.Atoi(pos[1])
		if err != nil || n < 1 {
			return fail(stderr, "accounts move", usageErr("position %q: want a number from 1", pos[1]))
		}
		at := n - 1
		v, err := eng.UpdateAccount(ctx, core.AccountPatch{ID: pos[0], Position: &at})
		if err != nil {
			return fail(stderr, "accounts move", err)
		}
		fmt.Fprintf(stdout, "Moved %s (%s) to position %d.\n", nameOf(v), v.ID, n)
	case "reset-backoff":
		v, err := eng.ResetBackoff(ctx, pos[0])
		if err != nil {
			return fail(stderr, "accounts reset-backoff", err)
		}
		fmt.Fprintf(stdout, "Cleared the refresh and quota backoff of %s (%s).\n", nameOf(v), v.ID)
	}
	return exitOK
}

// interspersed moves flags before positional arguments, so `remove fb1
// --yes` parses like `remove --yes fb1`.
func interspersed(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && !boolFlag(name) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(append(flags, "--"), pos...)
}

func boolFlag(name string) bool {
	switch name {
	case "json", "yes", "verbose", "h", "help":
		return true
	}
	return false
}

// renderAccountList is the table of `accounts list`.
func renderAccountList(p *pool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-16s %-6s %-38s %s\n", "POS", "LABEL", "TYPE", "ID", "STATE")
	for _, a := range p.Accounts {
		pos := "-"
		if a.Kind != "main" {
			pos = strconv.Itoa(a.Order + 1)
		}
		state := "usable"
		switch {
		case a.NeedsRelogin:
			state = "needs re-login: acctpool login --replace " + a.ID
		case !a.Enabled:
			state = "disabled"
		case !a.Usable:
			state = "not usable: " + a.Reason
		}
		label := a.Label
		if label == "" {
			label = "-"
		}
		fmt.Fprintf(&b, "%-4s %-16s %-6s %-38s %s\n", pos, label, a.Kind, a.ID, state)
	}
	return b.String()
}
