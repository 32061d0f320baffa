package secret

import (
	"regexp"
	"strings"
	"sync"
	"unsafe"
)

// redactPatterns match the shapes of credentials that can appear in upstream
// response bodies and error messages: bearer headers, Anthropic keys and
// tokens (sk-ant-...), JWTs, and JSON fields that carry tokens. Each has a
// trigger, a cheap test that text could match at all (given the text and
// its ASCII lower-case copy), so text without a credential (most of it)
// costs a few vectorised substring searches and no regexp run.
var redactPatterns = []struct {
	re      *regexp.Regexp
	trigger func(text, lower string) bool
}{
	{regexp.MustCompile(`(?i)bearer\s+[^\s"',;]+`), func(_, l string) bool { return strings.Contains(l, "bearer") }},
	{regexp.MustCompile(`sk-[A-Za-z0-9_\-]{4,}`), func(t, _ string) bool { return strings.Contains(t, "sk-") }},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`), func(t, _ string) bool { return strings.Contains(t, "eyJ") }},
	{regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token|api_key|apikey|access|refresh|token|code_verifier|code)"\s*:\s*"[^"]*"`),
		func(_, l string) bool {
			return strings.IndexByte(l, '"') >= 0 && (strings.Contains(l, "access") || strings.Contains(l, "refresh") ||
				strings.Contains(l, "token") || strings.Contains(l, "api") || strings.Contains(l, "code"))
		}},
	{regexp.MustCompile(`(?i)\b(access_token|refresh_token|code_verifier)=[^&\s"]+`),
		func(_, l string) bool { return strings.Contains(l, "_token=") || strings.Contains(l, "code_verifier=") }},
	// A URL's user information (https://user:password@host) is a credential.
	{regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.\-]*://[^/?#@\s"'<>]+@`),
		func(t, _ string) bool { return strings.Contains(t, "://") && strings.IndexByte(t, '@') >= 0 }},
}

// lowerBufs recycles the lower-case copies the triggers read.
var lowerBufs = sync.Pool{New: func() any { return new([]byte) }}

// lowerASCII writes the ASCII lower-case form of s into *buf and returns
// it as a string that aliases *buf: valid until the next lowerASCII on buf
// or its return to the pool, which is all Redact needs, without a copy.
func lowerASCII(buf *[]byte, s string) string {
	b := append((*buf)[:0], s...)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	*buf = b
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Redact returns text with every credential-shaped substring replaced by
// "[redacted]". It is the one function used for log lines, error messages and
// persisted error records, so a token echoed back by an upstream body never
// reaches disk or a host.
//
// # Notes
//
// Pass known secrets (the tokens the caller just sent) as extra arguments:
// they are removed verbatim even when they have no recognisable shape.
func Redact(text string, known ...Secret) string {
	for _, k := range known {
		if len(k) >= 4 {
			text = strings.ReplaceAll(text, string(k), redactedSecret)
		}
	}
	buf := lowerBufs.Get().(*[]byte)
	defer lowerBufs.Put(buf)
	lower := lowerASCII(buf, text)
	for _, p := range redactPatterns {
		// Most text holds no credential: the trigger and a failed search
		// allocate nothing, where a replacement always copies.
		if !p.trigger(text, lower) || p.re.FindStringIndex(text) == nil {
			continue
		}
		text = p.re.ReplaceAllStringFunc(text, redactMatch)
		lower = lowerASCII(buf, text)
	}
	return text
}

// redactMatch replaces one pattern match, keeping a JSON key, a form
// field name or the word Bearer so the text still reads.
func redactMatch(m string) string {
	if i := strings.Index(m, "://"); i > 0 && strings.HasSuffix(m, "@") {
		return m[:i+3] + redactedSecret + "@"
	}
	if i := strings.IndexByte(m, ':'); i > 0 && m[0] == '"' {
		return m[:i] + `:"` + redactedSecret + `"`
	}
	if i := strings.IndexByte(m, '='); i > 0 && !strings.HasPrefix(strings.ToLower(m), "bearer") {
		return m[:i+1] + redactedSecret
	}
	if strings.HasPrefix(strings.ToLower(m), "bearer") {
		return "Bearer " + redactedSecret
	}
	return redactedSecret
}
