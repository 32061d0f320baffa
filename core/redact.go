package core

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
)

// redactPatterns match the shapes of credentials that can appear in upstream
// response bodies and error messages: bearer headers, Anthropic keys and
// tokens (sk-ant-...), JWTs, and JSON fields that carry tokens.
var redactPatterns = []*regexp.Regexp{
	regexp.MustCompile(`(?i)bearer\s+[^\s"',;]+`),
	regexp.MustCompile(`sk-[A-Za-z0-9_\-]{4,}`),
	regexp.MustCompile(`eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*`),
	regexp.MustCompile(`(?i)"(access_token|refresh_token|id_token|api_key|apikey|access|refresh|token|code_verifier|code)"\s*:\s*"[^"]*"`),
	regexp.MustCompile(`(?i)\b(access_token|refresh_token|code_verifier)=[^&\s"]+`),
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
	for _, re := range redactPatterns {
		text = re.ReplaceAllStringFunc(text, func(m string) string {
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
		})
	}
	return text
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
