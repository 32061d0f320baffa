package core

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// redactPatterns match the shapes of credentials that can appear in upstream
// response bodies and error messages: bearer headers, Anthropic keys and
// tokens (sk-ant-...), JWTs, and JSON fields that carry tokens. Each has a
// trigger, a cheap test that text could match at all, so text without a
// credential (most of it) costs a few substring searches, no regexp run.
var redactPatterns = []struct {
	re      *regexp.Regexp
	trigger func(string) bool
}{
	{regexp.MustCompile(`(?i)bearer\s+[^\s"',;]+`), func(s string) bool { return containsFold(s, "bearer") }},
	{regexp.MustCompile(`sk-[A-Za-z0-9_\-]{4,}`), func(s string) bool { return strings.Contains(s, "sk-") }},
	{regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`), func(s string) bool { return strings.Contains(s, "eyJ") }},
	{regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token|api_key|apikey|access|refresh|token|code_verifier|code)"\s*:\s*"[^"]*"`),
		func(s string) bool {
			return strings.IndexByte(s, '"') >= 0 && (containsFold(s, "access") || containsFold(s, "refresh") ||
				containsFold(s, "token") || containsFold(s, "api") || containsFold(s, "code"))
		}},
	{regexp.MustCompile(`(?i)\b(access_token|refresh_token|code_verifier)=[^&\s"]+`),
		func(s string) bool {
			return strings.IndexByte(s, '=') >= 0 && (containsFold(s, "_token=") || containsFold(s, "code_verifier="))
		}},
}

// containsFold reports whether s contains sub, ASCII case-insensitively;
// sub must be lower-case.
func containsFold(s, sub string) bool {
	if len(sub) == 0 {
		return true
	}
	first := sub[0]
	for i := 0; i+len(sub) <= len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == first && strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
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
	for _, p := range redactPatterns {
		// Most text holds no credential: the trigger and a failed search
		// allocate nothing, where a replacement always copies.
		if !p.trigger(text) || p.re.FindStringIndex(text) == nil {
			continue
		}
		text = p.re.ReplaceAllStringFunc(text, redactMatch)
	}
	return text
}

// redactMatch replaces one pattern match, keeping a JSON key, a form
// field name or the word Bearer so the text still reads.
func redactMatch(m string) string {
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

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
