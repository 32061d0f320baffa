package conformance

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Mismatch is one way an actual value differs from what a case wants: the
// JSON path, the wanted value (JSON, or a matcher such as `$gte 5`) and
// what was there instead. Note replaces Want/Got for a problem that is no
// pair of values (an unknown matcher).
type Mismatch struct {
	Path string `json:"path"`
	Want string `json:"want,omitempty"`
	// Got is the actual value as JSON; empty with Missing.
	Got     string `json:"got,omitempty"`
	Missing bool   `json:"missing,omitempty"`
	Note    string `json:"note,omitempty"`
}

// String renders the mismatch on one line, as failures list it.
func (m Mismatch) String() string {
	switch {
	case m.Note != "":
		return fmt.Sprintf("%s: %s", m.Path, m.Note)
	case m.Missing:
		return fmt.Sprintf("%s: missing, want %s", m.Path, m.Want)
	}
	return fmt.Sprintf("%s: got %s, want %s", m.Path, m.Got, m.Want)
}

func mismatchStrings(ms []Mismatch) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.String()
	}
	return out
}

// match is [compare] rendered as one line per mismatch.
func match(path string, want, actual any, present bool) []string {
	return mismatchStrings(compare(path, want, actual, present))
}

// compare reports every way actual fails to match want, each with its JSON
// path. The rules:
//
//   - an object in want matches an object with at least those keys, each
//     matching (subset match); extra keys in actual are fine;
//   - an array matches an array of the same length, element by element;
//   - numbers compare by value, other scalars by equality;
//   - an object whose only key starts with "$" is a matcher:
//     {"$absent": true} the key must not exist; {"$present": true} it must;
//     {"$gt"|"$gte"|"$lt"|"$lte": n}; {"$between": [lo, hi]} inclusive;
//     {"$contains": s} a string containing s, or an array with an element
//     matching s; {"$notContains": s}; {"$regex": re}; {"$len": n};
//     {"$oneOf": [a, b]} any of them matches; {"$not": m} m does not match.
func compare(path string, want, actual any, present bool) []Mismatch {
	if m, ok := matcher(want); ok {
		return m(path, actual, present)
	}
	if !present {
		return []Mismatch{{Path: path, Want: show(want), Missing: true}}
	}
	switch w := want.(type) {
	case map[string]any:
		a, ok := actual.(map[string]any)
		if !ok {
			return []Mismatch{{Path: path, Got: show(actual), Want: "an object"}}
		}
		var out []Mismatch
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v, ok := a[k]
			out = append(out, compare(path+"."+k, w[k], v, ok)...)
		}
		return out
	case []any:
		a, ok := actual.([]any)
		if !ok {
			return []Mismatch{{Path: path, Got: show(actual), Want: "an array"}}
		}
		if len(a) != len(w) {
			return []Mismatch{{Path: path, Got: fmt.Sprintf("%d elements %s", len(a), show(actual)), Want: fmt.Sprintf("%d elements %s", len(w), show(want))}}
		}
		var out []Mismatch
		for i := range w {
			out = append(out, compare(fmt.Sprintf("%s[%d]", path, i), w[i], a[i], true)...)
		}
		return out
	}
	if wn, ok := number(want); ok {
		an, ok := number(actual)
		if !ok || wn != an {
			return []Mismatch{{Path: path, Got: show(actual), Want: show(want)}}
		}
		return nil
	}
	if !reflect.DeepEqual(want, actual) {
		return []Mismatch{{Path: path, Got: show(actual), Want: show(want)}}
	}
	return nil
}

type matchFunc func(path string, actual any, present bool) []Mismatch

func matcher(want any) (matchFunc, bool) {
	m, ok := want.(map[string]any)
	if !ok || len(m) != 1 {
		return nil, false
	}
	var op string
	var arg any
	for k, v := range m {
		op, arg = k, v
	}
	if !strings.HasPrefix(op, "$") {
		return nil, false
	}
	fail := func(path string, actual any, what string) []Mismatch {
		return []Mismatch{{Path: path, Got: show(actual), Want: op + " " + what}}
	}
	cmp := func(test func(a, b float64) bool) matchFunc {
		return func(path string, actual any, present bool) []Mismatch {
			a, aok := number(actual)
			b, bok := number(arg)
			if !present || !aok || !bok || !test(a, b) {
				return fail(path, actual, show(arg))
			}
			return nil
		}
	}
	switch op {
	case "$absent":
		return func(path string, actual any, present bool) []Mismatch {
			if present {
				return []Mismatch{{Path: path, Got: show(actual), Want: "absent"}}
			}
			return nil
		}, true
	case "$present", "$any":
		return func(path string, actual any, present bool) []Mismatch {
			if !present {
				return []Mismatch{{Path: path, Want: "present", Missing: true}}
			}
			return nil
		}, true
	case "$gt":
		return cmp(func(a, b float64) bool { return a > b }), true
	case "$gte":
		return cmp(func(a, b float64) bool { return a >= b }), true
	case "$lt":
		return cmp(func(a, b float64) bool { return a < b }), true
	case "$lte":
		return cmp(func(a, b float64) bool { return a <= b }), true
	case "$between":
		return func(path string, actual any, present bool) []Mismatch {
			r, _ := arg.([]any)
			a, aok := number(actual)
			if len(r) == 2 {
				lo, lok := number(r[0])
				hi, hok := number(r[1])
				if present && aok && lok && hok && a >= lo && a <= hi {
					return nil
				}
			}
			return fail(path, actual, show(arg))
		}, true
	case "$contains", "$notContains":
		want := op == "$contains"
		return func(path string, actual any, present bool) []Mismatch {
			if !present {
				if want {
					return fail(path, actual, show(arg))
				}
				return nil
			}
			if contains(actual, arg) != want {
				return fail(path, actual, show(arg))
			}
			return nil
		}, true
	case "$regex":
		return func(path string, actual any, present bool) []Mismatch {
			s, _ := actual.(string)
			re, err := regexp.Compile(fmt.Sprint(arg))
			if err != nil || !present || !re.MatchString(s) {
				return fail(path, actual, show(arg))
			}
			return nil
		}, true
	case "$len":
		return func(path string, actual any, present bool) []Mismatch {
			n, _ := number(arg)
			l := -1
			switch a := actual.(type) {
			case []any:
				l = len(a)
			case map[string]any:
				l = len(a)
			case string:
				l = len(a)
			}
			if !present || float64(l) != n {
				return fail(path, actual, show(arg))
			}
			return nil
		}, true
	case "$oneOf":
		return func(path string, actual any, present bool) []Mismatch {
			opts, _ := arg.([]any)
			for _, o := range opts {
				if len(compare(path, o, actual, present)) == 0 {
					return nil
				}
			}
			return fail(path, actual, show(arg))
		}, true
	case "$not":
		return func(path string, actual any, present bool) []Mismatch {
			if len(compare(path, arg, actual, present)) == 0 {
				return fail(path, actual, show(arg))
			}
			return nil
		}, true
	}
	return func(path string, _ any, _ bool) []Mismatch {
		return []Mismatch{{Path: path, Note: "unknown matcher " + op}}
	}, true
}

func contains(actual, want any) bool {
	switch a := actual.(type) {
	case string:
		s, ok := want.(string)
		return ok && strings.Contains(a, s)
	case []any:
		for _, el := range a {
			if len(compare("", want, el, true)) == 0 {
				return true
			}
		}
	}
	return false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, !math.IsNaN(x)
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// lookup follows a dot path ("accounts.fb-1.lastRefreshError"; numeric
// segments index arrays) and reports whether it exists.
func lookup(v any, path string) (any, bool) {
	for _, seg := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}
