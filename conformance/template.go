package conformance

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Case values may name times relative to the case clock and the fake's
// address instead of spelling out epoch numbers:
//
//	"$t0"          the case clock start, as a number (epoch ms)
//	"$t0+24h"      an offset from it; units ms, s, m, h, d; terms chain ("$t0+1h-1s")
//	"$ms:90s"      a duration as a number of ms
//	"$iso:t0+14m"  the time as an RFC 3339 string
//	"$unix:t0+14m" the time as a string of epoch seconds (rate-limit headers)
//	"$fake"        inside any string: the fake server's base URL
//
// Substitution applies to files, fake responses, params and expectations.
type env struct {
	t0   int64
	fake string
}

var (
	timeExpr = regexp.MustCompile(`^t0((?:[+-]\d+(?:ms|s|m|h|d))*)$`)
	termExpr = regexp.MustCompile(`([+-])(\d+)(ms|s|m|h|d)`)
)

var units = map[string]int64{"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

func (e env) timeOf(expr string) (int64, error) {
	m := timeExpr.FindStringSubmatch(expr)
	if m == nil {
		return 0, fmt.Errorf("bad time expression %q", expr)
	}
	t := e.t0
	for _, term := range termExpr.FindAllStringSubmatch(m[1], -1) {
		n, _ := strconv.ParseInt(term[2], 10, 64)
		d := n * units[term[3]]
		if term[1] == "-" {
			d = -d
		}
		t += d
	}
	return t, nil
}

// durationMs parses "61s", "5m", "1500ms", "2h", "1d" or a bare number of ms.
func durationMs(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Int64()
	case float64:
		return int64(x), nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case string:
		m := termExpr.FindStringSubmatch("+" + x)
		if m == nil || m[0] != "+"+x {
			return 0, fmt.Errorf("bad duration %q", x)
		}
		n, _ := strconv.ParseInt(m[2], 10, 64)
		return n * units[m[3]], nil
	}
	return 0, fmt.Errorf("bad duration %v", v)
}

// expand returns v with every template replaced.
func (e env) expand(v any) (any, error) {
	switch x := v.(type) {
	case string:
		return e.expandString(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			ev, err := e.expand(val)
			if err != nil {
				return nil, err
			}
			out[k] = ev
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			ev, err := e.expand(val)
			if err != nil {
				return nil, err
			}
			out[i] = ev
		}
		return out, nil
	}
	return v, nil
}

func (e env) expandString(s string) (any, error) {
	switch {
	case s == "$t0" || strings.HasPrefix(s, "$t0+") || strings.HasPrefix(s, "$t0-"):
		t, err := e.timeOf(s[1:])
		if err != nil {
			return nil, err
		}
		return json.Number(strconv.FormatInt(t, 10)), nil
	case strings.HasPrefix(s, "$ms:"):
		d, err := durationMs(s[4:])
		if err != nil {
			return nil, err
		}
		return json.Number(strconv.FormatInt(d, 10)), nil
	case strings.HasPrefix(s, "$iso:"):
		t, err := e.timeOf(s[5:])
		if err != nil {
			return nil, err
		}
		return time.UnixMilli(t).UTC().Format(time.RFC3339), nil
	case strings.HasPrefix(s, "$unix:"):
		t, err := e.timeOf(s[6:])
		if err != nil {
			return nil, err
		}
		return strconv.FormatInt(t/1000, 10), nil
	}
	return strings.ReplaceAll(s, "$fake", e.fake), nil
}

// expandText is expand for a map of plain strings (headers).
func (e env) expandHeaders(h map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(h))
	for k, v := range h {
		ev, err := e.expandString(v)
		if err != nil {
			return nil, err
		}
		out[k] = fmt.Sprint(ev)
	}
	return out, nil
}
