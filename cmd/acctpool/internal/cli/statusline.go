package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const statuslineUsage = `statusline [--format TEMPLATE] [--ascii] [file flags]

Prints one short line for editor and shell status bars, for example
  main 62%·5h ▸ fb1 88%·7d ▸ 1 needs login

Placeholders of --format (default "{accounts}"):
  {accounts}  every enabled account: "label P%·W" (P = percent left in its
              tightest window W) when usable, "label ✕ 1h02m" (time until it
              is back) when not, then "N needs login"; API-key routes only
              when they would serve next
  {next}      label of the account the next request would get, or "none"
  {next_5h}   percent left in that account's 5-hour window ("?" if unknown)
  {next_7d}   percent left in its 7-day window ("?" if unknown)
  {usable}    accounts that can serve now
  {total}     accounts listed, main included
  {relogin}   accounts that need a re-login
  {mode}      routing mode
  {back}      when none can serve: time until the first is back, else empty
Exit status as for status: 0 when one account can serve, 1 when none, 2 on
an error.`

// Statusline is `acctpool statusline`.
func Statusline(args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	var c common
	fs := newFlags("statusline", stderr, statuslineUsage)
	c.register(fs)
	format := fs.String("format", "{accounts}", "template; see the placeholders above")
	ascii := fs.Bool("ascii", false, "only ASCII characters")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "statusline", usageErr("unexpected argument %q", fs.Arg(0)))
	}
	eng, clock, closeStore, err := c.engine(env, stderr)
	if err != nil {
		return fail(stderr, "statusline", err)
	}
	defer closeStore()
	p, err := loadPool(context.Background(), eng, clock.Now())
	if err != nil {
		return fail(stderr, "statusline", err)
	}
	fmt.Fprintln(stdout, renderStatusline(p, *format, style{unicode: !*ascii}))
	if countUsable(p) == 0 {
		return exitNone
	}
	return exitOK
}

// renderStatusline fills the template with the pool's values.
func renderStatusline(p *pool, format string, st style) string {
	next, _ := nextAccount(p)
	relogin := 0
	for _, a := range p.Accounts {
		if a.NeedsRelogin {
			relogin++
		}
	}
	values := map[string]string{
		"accounts": statuslineAccounts(p, next, relogin, st),
		"next":     "none",
		"next_5h":  "?",
		"next_7d":  "?",
		"usable":   strconv.Itoa(countUsable(p)),
		"total":    strconv.Itoa(len(p.Accounts)),
		"relogin":  strconv.Itoa(relogin),
		"mode":     p.Mode,
		"back":     "",
	}
	if next != nil {
		values["next"] = next.Name()
		for _, w := range next.Windows {
			switch w.Name {
			case "5h":
				values["next_5h"] = fmtPct(w.Remaining)
			case "7d":
				values["next_7d"] = fmtPct(w.Remaining)
			}
		}
	}
	if back := nextBack(p); countUsable(p) == 0 && !back.IsZero() {
		values["back"] = shortDuration(back.Sub(p.Now))
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] == '{' {
			if j := strings.IndexByte(format[i:], '}'); j > 0 {
				if v, ok := values[format[i+1:i+j]]; ok {
					b.WriteString(v)
					i += j
					continue
				}
			}
		}
		b.WriteByte(format[i])
	}
	return b.String()
}

func statuslineAccounts(p *pool, next *account, relogin int, st style) string {
	var parts []string
	for _, a := range p.Accounts {
		isNext := next != nil && next.ID == a.ID
		switch {
		case a.NeedsRelogin || !a.Enabled:
			continue
		case a.Kind == "api" && !isNext:
			continue
		case a.Usable:
			parts = append(parts, a.Name()+" "+tightest(a, st))
		default:
			text := a.Name() + " " + st.pick("✕", "x")
			if !a.Until.IsZero() && a.Until.After(p.Now) {
				text += " " + shortDuration(a.Until.Sub(p.Now))
			}
			parts = append(parts, text)
		}
	}
	if relogin > 0 {
		parts = append(parts, fmt.Sprintf("%d needs login", relogin))
	}
	if len(parts) == 0 {
		return "no accounts"
	}
	return strings.Join(parts, st.pick(" ▸ ", " > "))
}

// tightest is "62%·5h": the least remaining of the 5h and 7d windows.
func tightest(a account, st style) string {
	if a.Kind == "api" {
		return "key"
	}
	var best *window
	for i := range a.Windows {
		w := &a.Windows[i]
		if w.Model != "" {
			continue
		}
		if best == nil || w.Remaining < best.Remaining {
			best = w
		}
	}
	if best == nil {
		return "?"
	}
	return fmtPct(best.Remaining) + "%" + st.pick("·", "/") + best.Name
}
