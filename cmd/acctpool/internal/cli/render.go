package cli

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// style is how a screen is drawn: colour and Unicode on a terminal, plain
// ASCII otherwise, fitted to width columns.
type style struct {
	color   bool
	unicode bool
	tty     bool
	width   int
}

// outputStyle decides the style from --color, NO_COLOR, --width, COLUMNS
// and the terminal behind stdout.
func outputStyle(stdout io.Writer, env func(string) string, color string, width int) (style, error) {
	cols, tty := terminalWidth(stdout)
	st := style{tty: tty}
	switch color {
	case "always":
		st.color, st.unicode = true, true
	case "never":
	case "auto", "":
		st.unicode = tty && env("NO_COLOR") == ""
		st.color = st.unicode
	default:
		return st, usageErr("--color %q: want auto, always or never", color)
	}
	switch {
	case width > 0:
		st.width = width
	case width < 0:
		return st, usageErr("--width %d: want a positive column count", width)
	default:
		if n, err := strconv.Atoi(strings.TrimSpace(env("COLUMNS"))); err == nil && n > 0 {
			st.width = n
		} else if cols > 0 {
			st.width = cols
		} else {
			st.width = 80
		}
	}
	if st.width < 40 {
		st.width = 40
	}
	return st, nil
}

const (
	ansiReset   = "\x1b[0m"
	ansiBold    = "\x1b[1m"
	ansiDim     = "\x1b[2m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiMagenta = "\x1b[35m"
)

func (s style) paint(code, text string) string {
	if !s.color || text == "" {
		return text
	}
	return code + text + ansiReset
}

func (s style) pick(unicode, ascii string) string {
	if s.unicode {
		return unicode
	}
	return ascii
}

// visibleLen is the width of s on screen: runes, without colour codes.
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			j := strings.IndexByte(s[i:], 'm')
			if j < 0 {
				break
			}
			i += j + 1
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// flow joins parts with sep and wraps onto indented lines so no line is
// wider than width (a single part wider than width stands alone).
func flow(parts []string, sep string, width, indent int) string {
	var b strings.Builder
	col := 0
	pad := strings.Repeat(" ", indent)
	for _, p := range parts {
		if p == "" {
			continue
		}
		w := visibleLen(p)
		switch {
		case col == 0:
		case col+visibleLen(sep)+w <= width:
			b.WriteString(sep)
			col += visibleLen(sep)
		default:
			b.WriteString("\n" + pad)
			col = indent
		}
		b.WriteString(p)
		col += w
	}
	return b.String()
}

// renderStatus draws the status screen of p.
func renderStatus(p *pool, st style) string {
	var b strings.Builder
	dot := st.pick(" · ", " | ")
	usable := countUsable(p)
	title := st.paint(ansiBold, "acctpool status") + "  " + absTime(p.Now, p.Now, true)
	b.WriteString(title + "\n")
	if p.Store != "" {
		b.WriteString("shared pool: " + p.Store + "\n")
	}
	for _, a := range p.Accounts {
		if a.NeedsRelogin {
			line := st.pick("⚠ ", "! ") + a.Name() + " needs re-login"
			if !a.ReloginSince.IsZero() {
				line += " since " + relTime(a.ReloginSince, p.Now)
			}
			b.WriteString(st.paint(ansiRed+ansiBold, line) + "; to fix, run:\n    " + fixFor(a) + "\n")
		}
	}
	summary := fmt.Sprintf("%d of %d accounts can serve", usable, len(p.Accounts))
	if usable == 0 {
		summary = st.paint(ansiRed+ansiBold, summary)
		if back := nextBack(p); !back.IsZero() {
			summary += dot + "first back " + when(back, p.Now)
		}
	}
	next, why := nextAccount(p)
	route := "next request " + st.pick("→ ", "-> ")
	if next != nil {
		route += st.paint(ansiBold, next.Name()) + " (" + why + ")"
	} else {
		route += st.paint(ansiRed, "none")
	}
	parts := []string{summary, "routing " + p.Mode, route}
	if p.Sticky.Total > 0 || p.Mode == "sticky-balanced" {
		parts = append(parts, stickyText(p))
	}
	b.WriteString(flow(parts, dot, st.width, 2) + "\n")
	thresholds := false
	for _, a := range p.Accounts {
		b.WriteString("\n")
		b.WriteString(renderAccount(p, a, next != nil && next.ID == a.ID, st))
		for _, w := range a.Windows {
			thresholds = thresholds || len(w.Thresholds) > 0
		}
	}
	if thresholds {
		legend := fmt.Sprintf("bars show quota left; %s marks a threshold (min = quota.minimumRemaining, kill = killswitch)", st.pick("┃", "|"))
		b.WriteString("\n" + st.paint(ansiDim, flow(strings.Fields(legend), " ", st.width, 0)) + "\n")
	}
	return b.String()
}

func stickyText(p *pool) string {
	if p.Sticky.Total == 0 {
		return "no sticky sessions held"
	}
	var per []string
	for _, a := range p.Accounts {
		if n := p.Sticky.ByAccount[a.ID]; n > 0 {
			per = append(per, fmt.Sprintf("%s %d", a.Name(), n))
		}
	}
	text := fmt.Sprintf("%d sticky session", p.Sticky.Total)
	if p.Sticky.Total != 1 {
		text += "s"
	}
	if len(per) > 0 {
		text += " (" + strings.Join(per, ", ") + ")"
	}
	return text
}

// kindText says what an account is: "main account", "OAuth fallback 2",
// "API-key route".
func kindText(a account) string {
	switch a.Kind {
	case "main":
		return "main account"
	case "api":
		return "API-key route"
	}
	return fmt.Sprintf("OAuth fallback %d", a.Position)
}

func renderAccount(p *pool, a account, next bool, st style) string {
	var b strings.Builder
	dot := st.pick(" · ", " | ")
	var mark, verdict string
	switch {
	case a.NeedsRelogin:
		mark = st.paint(ansiRed, st.pick("✖", "!"))
		verdict = st.paint(ansiRed+ansiBold, "NEEDS RE-LOGIN")
	case a.Usable:
		mark = st.paint(ansiGreen, st.pick("●", "*"))
		verdict = st.paint(ansiGreen, "usable")
		if a.Kind == "api" {
			verdict += " (only when main's quota is spent)"
		}
	case !a.Enabled:
		mark = st.paint(ansiDim, st.pick("○", "-"))
		verdict = st.paint(ansiDim, "disabled")
	default:
		mark = st.paint(ansiRed, st.pick("○", "x"))
		verdict = st.paint(ansiRed, "not usable: "+a.Reason)
	}
	head := []string{mark + " " + st.paint(ansiBold, a.Name()), kindText(a), verdict}
	if !a.Usable && !a.Until.IsZero() {
		head = append(head, "back "+when(a.Until, p.Now))
	}
	if next {
		head = append(head, st.paint(ansiBold, st.pick("◀ next", "<- next")))
	}
	b.WriteString(flow(head, dot, st.width, 4) + "\n")
	if a.Label != "" && a.Kind != "main" {
		b.WriteString("    " + st.paint(ansiDim, "id "+a.ID) + "\n")
	}
	if a.Kind != "api" {
		if len(a.Windows) == 0 {
			b.WriteString("    no quota known\n")
		}
		nameW := 2
		tail := 0
		for _, w := range a.Windows {
			nameW = max(nameW, min(utf8.RuneCountInString(w.Name), 16))
			// The percentage and the reset share the bar's line; a model
			// window's note may wrap below.
			notes := windowNotes(p, w)
			tail = max(tail, visibleLen(windowPercent(w, st))+3+visibleLen(notes[len(notes)-1]))
		}
		barW := min(max(st.width-8-nameW-tail, 10), 50)
		for _, w := range a.Windows {
			b.WriteString(renderWindow(p, w, nameW, barW, st) + "\n")
		}
	}
	var facts []string
	switch {
	case a.Kind == "main":
		facts = append(facts, "token held by the host")
	case a.Kind == "api":
		facts = append(facts, "API key; quota not tracked")
	case a.LastRefreshed.IsZero():
		facts = append(facts, "token never refreshed")
	default:
		facts = append(facts, "token refreshed "+when(a.LastRefreshed, p.Now))
	}
	if a.Kind != "api" {
		if a.QuotaChecked.IsZero() {
			facts = append(facts, "quota never checked")
		} else {
			facts = append(facts, "quota checked "+when(a.QuotaChecked, p.Now))
		}
	}
	if !a.QuotaBackoffUntil.IsZero() && a.QuotaBackoffUntil.After(p.Now) {
		facts = append(facts, st.paint(ansiYellow, "quota polls paused, resume "+when(a.QuotaBackoffUntil, p.Now)))
	}
	b.WriteString("    " + flow(facts, dot, st.width-4, 4) + "\n")
	return b.String()
}

// renderWindow draws one quota window: name, a bar of the quota left with
// the thresholds marked on it, the percent left and the reset countdown.
func renderWindow(p *pool, w window, nameW, barW int, st style) string {
	name := w.Name
	if utf8.RuneCountInString(name) > nameW {
		name = string([]rune(name)[:nameW-1]) + st.pick("…", "~")
	}
	name += strings.Repeat(" ", nameW-utf8.RuneCountInString(name))
	filled := int(math.Round(w.Remaining / 100 * float64(barW)))
	type cell struct{ ch, colour string }
	cells := make([]cell, barW)
	colour := ansiGreen
	switch {
	case w.Remaining <= 0 || belowAny(w):
		colour = ansiRed
	case w.Remaining < 25:
		colour = ansiYellow
	}
	for i := range cells {
		if i < filled {
			cells[i] = cell{st.pick("█", "#"), colour}
		} else {
			cells[i] = cell{st.pick("░", "-"), ansiDim}
		}
	}
	for _, t := range w.Thresholds {
		i := min(max(int(math.Round(t.Percent/100*float64(barW))), 0), barW-1)
		c := ansiYellow
		if t.Kind == "kill" {
			c = ansiMagenta
		}
		cells[i] = cell{st.pick("┃", "|"), c}
	}
	var bar strings.Builder
	bar.WriteString("[")
	for i := 0; i < len(cells); {
		j := i
		var run strings.Builder
		for j < len(cells) && cells[j].colour == cells[i].colour {
			run.WriteString(cells[j].ch)
			j++
		}
		bar.WriteString(st.paint(cells[i].colour, run.String()))
		i = j
	}
	bar.WriteString("]")
	head := "    " + name + " " + bar.String() + " "
	return flow(append([]string{head + windowPercent(w, st)}, windowNotes(p, w)...), st.pick(" · ", " | "), st.width, 6+nameW)
}

// windowPercent is "62% left", with the thresholds that apply.
func windowPercent(w window, st style) string {
	text := fmt.Sprintf("%4s%% left", fmtPct(w.Remaining))
	if w.Remaining <= 0 {
		text = st.paint(ansiRed, text)
	}
	var marks []string
	for _, t := range w.Thresholds {
		marks = append(marks, fmt.Sprintf("%s %s%%", t.Kind, fmtPct(t.Percent)))
	}
	if len(marks) > 0 {
		text += " (" + strings.Join(marks, ", ") + ")"
	}
	return text
}

// windowNotes are the parts after the percentage: the reset, and what an
// exhausted model window means.
func windowNotes(p *pool, w window) []string {
	var notes []string
	if w.Model != "" && w.Remaining <= 0 {
		notes = append(notes, w.Model+" requests skip this account")
	}
	if !w.ResetsAt.IsZero() {
		notes = append(notes, "resets "+when(w.ResetsAt, p.Now))
	} else {
		notes = append(notes, "reset unknown")
	}
	return notes
}

func belowAny(w window) bool {
	for _, t := range w.Thresholds {
		if w.Remaining < t.Percent {
			return true
		}
	}
	return false
}

func fmtPct(f float64) string {
	if f == math.Trunc(f) || f >= 10 {
		return strconv.FormatFloat(math.Round(f), 'f', 0, 64)
	}
	return strconv.FormatFloat(f, 'f', 1, 64)
}

// when is "in 2h13m (14:30)" or "3m ago (09:57)".
func when(t, now time.Time) string {
	return relTime(t, now) + " (" + absTime(t, now, false) + ")"
}

// relTime is a short countdown or age: "in 2h13m", "3m ago", "now".
func relTime(t, now time.Time) string {
	d := t.Sub(now)
	if d > -time.Second && d < time.Second {
		return "now"
	}
	if d > 0 {
		return "in " + shortDuration(d)
	}
	return shortDuration(-d) + " ago"
}

// shortDuration keeps the two largest units: 45s, 12m, 2h13m, 3d4h.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 24*time.Hour:
		h := int(d.Hours())
		m := int((d - time.Duration(h)*time.Hour).Minutes())
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%02dm", h, m)
	default:
		days := int(d.Hours()) / 24
		h := int((d - time.Duration(days)*24*time.Hour).Hours())
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// absTime is t in now's time zone: the clock time today, the weekday within
// a week, the date otherwise; full adds the date and zone.
func absTime(t, now time.Time, full bool) string {
	t = t.In(now.Location())
	if full {
		return t.Format("2006-01-02 15:04 MST")
	}
	y1, m1, d1 := t.Date()
	y2, m2, d2 := now.Date()
	switch {
	case y1 == y2 && m1 == m2 && d1 == d2:
		return t.Format("15:04")
	case t.Sub(now) < 6*24*time.Hour && now.Sub(t) < 6*24*time.Hour:
		return t.Format("Mon 15:04")
	}
	return t.Format("2006-01-02 15:04")
}
