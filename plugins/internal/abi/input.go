package abi

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/acctpool/acctpool/core/secret"
	"github.com/acctpool/acctpool/core/verdict"
)

// Input limits of the ABI.
const (
	// MaxBody is the most body bytes a guest sees; bodyTruncated says when
	// the body was longer.
	MaxBody = 16 << 10
	// MaxHeaderValue is the most bytes of one header value a guest sees.
	MaxHeaderValue = 256
	// MaxMessage is the most bytes of the message a guest sees.
	MaxMessage = 1024
)

// RedactSlack is how many bytes past a cut the redaction looks, so a
// credential that starts before the cut and is shorter than this is
// replaced whole instead of leaving a prefix behind.
const RedactSlack = 4 << 10

// maxHeaders is the most headers a guest sees.
const maxHeaders = 16

// headerAllowed reports whether a response header (lower-cased) may reach
// a guest. The list is what classification needs and nothing else:
// retry-after and x-should-retry (when to retry), content-type (how to
// read the body), anthropic-organization-id (which organisation's policy
// refused: an identifier, not a credential; the org-403 example keys on
// it) and the rate-limit families (anthropic-ratelimit-*, unified
// included, and x-ratelimit-*), all numbers, dates or short words.
// Everything else is dropped: credentials (authorization, cookies,
// set-cookie), www-authenticate (can quote a token or realm), request ids
// (request-id, x-request-id, cf-ray: they identify one of our requests in
// upstream logs) and every request header.
func headerAllowed(name string) bool {
	switch name {
	case "retry-after", "x-should-retry", "content-type", "anthropic-organization-id":
		return true
	}
	return strings.HasPrefix(name, "anthropic-ratelimit-") || strings.HasPrefix(name, "x-ratelimit-")
}

// Header is one response header as a guest sees it.
type Header struct {
	Name  string // lower-cased
	Value string // the first value, redacted, at most MaxHeaderValue bytes
}

// Input is one failure as a guest may see it. Nothing in it can carry a
// credential: headers are filtered by an allow-list, and the body, the
// header values, the message and the built-in reason have been through
// [secret.Redact] with the secrets known at the time of the call.
//
// # Notes
//
// Build it once per classification with [NewInput] (a chain of plugins
// shares it) and encode it per plugin with [Input.Append].
type Input struct {
	Source          verdict.Source
	Status          int
	Network         bool
	StreamRateLimit bool
	// Body is the redacted body cut to MaxBody bytes; BodyTruncated says
	// whether it was longer.
	Body          string
	BodyTruncated bool
	Message       string
	Builtin       verdict.Verdict

	headers  [maxHeaders]Header
	nHeaders int
}

// Headers returns the allow-listed headers, sorted by name.
func (in *Input) Headers() []Header { return in.headers[:in.nHeaders] }

// NewInput builds the guest's view of f and the built-in verdict,
// redacting every string with secret.Redact and known (the host's main
// tokens and every stored token).
func NewInput(f verdict.Failure, builtin verdict.Verdict, known []secret.Secret) Input {
	in := Input{Source: f.Source, Status: f.Status, Network: f.Network, StreamRateLimit: f.StreamRateLimit, Builtin: builtin}
	// Redact a window a little longer than what the guest can see, then
	// cut: a token straddling the cut is replaced whole.
	window := f.Body
	if len(window) > MaxBody+RedactSlack {
		window = window[:MaxBody+RedactSlack]
	}
	// Invalid UTF-8 becomes U+FFFD before the cut, so the caps hold for
	// the text the guest decodes (one bad byte decodes to three).
	body := secret.Redact(validUTF8(string(window)), known...)
	in.BodyTruncated = len(f.Body) > len(window) || len(body) > MaxBody
	in.Body = cutString(body, MaxBody)
	in.Message = cutString(secret.Redact(validUTF8(cutString(f.Message, MaxMessage+RedactSlack)), known...), MaxMessage)
	in.Builtin.Reason = secret.Redact(validUTF8(builtin.Reason), known...)
	for k, v := range f.Header {
		if len(v) == 0 || in.nHeaders == maxHeaders {
			continue
		}
		name := strings.ToLower(k)
		if !headerAllowed(name) {
			continue
		}
		in.headers[in.nHeaders] = Header{Name: name, Value: cutString(secret.Redact(validUTF8(cutString(v[0], MaxHeaderValue+RedactSlack)), known...), MaxHeaderValue)}
		in.nHeaders++
	}
	slices.SortFunc(in.headers[:in.nHeaders], func(a, b Header) int { return strings.Compare(a.Name, b.Name) })
	return in
}

// validUTF8 replaces invalid UTF-8 with U+FFFD; valid text is returned
// as is, without copying.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// AppendInput appends the input JSON of one classification to dst, with
// the body cut to bodyMax bytes (at most [MaxBody]). It is [NewInput]
// without known secrets (pattern redaction only) followed by
// [Input.Append]; the host uses those two directly.
func AppendInput(dst []byte, f verdict.Failure, builtin verdict.Verdict, bodyMax int) []byte {
	in := NewInput(f, builtin, nil)
	return in.Append(dst, bodyMax)
}

// Append appends the input JSON to dst, with the body cut further to
// bodyMax bytes (at most [MaxBody]).
//
//	{"abi":1,"source":"token","status":403,"network":false,"streamRateLimit":false,
//	 "headers":{"retry-after":"30"},"body":"…","bodyTruncated":false,"message":"…",
//	 "builtin":{"class":"org_policy","retryAfterMs":0,"reason":"403 forbidden"}}
//
// Keys are fixed and new ones are only ever added.
func (in *Input) Append(dst []byte, bodyMax int) []byte {
	if bodyMax > MaxBody || bodyMax < 0 {
		bodyMax = MaxBody
	}
	dst = append(dst, `{"abi":1,"source":`...)
	dst = appendString(dst, string(in.Source), -1)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(in.Status), 10)
	dst = append(dst, `,"network":`...)
	dst = strconv.AppendBool(dst, in.Network)
	dst = append(dst, `,"streamRateLimit":`...)
	dst = strconv.AppendBool(dst, in.StreamRateLimit)
	dst = append(dst, `,"headers":{`...)
	for i, h := range in.Headers() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, h.Name, -1)
		dst = append(dst, ':')
		dst = appendString(dst, h.Value, -1)
	}
	dst = append(dst, `},"body":`...)
	body := in.Body
	truncated := in.BodyTruncated || len(body) > bodyMax
	dst = appendString(dst, body, bodyMax)
	dst = append(dst, `,"bodyTruncated":`...)
	dst = strconv.AppendBool(dst, truncated)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, in.Message, -1)
	dst = append(dst, `,"builtin":{"class":`...)
	dst = appendString(dst, string(in.Builtin.Class), -1)
	dst = append(dst, `,"retryAfterMs":`...)
	dst = strconv.AppendInt(dst, in.Builtin.RetryAfterMs(), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, in.Builtin.Reason, -1)
	return append(dst, "}}"...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, cut to max bytes when max >= 0.
// Invalid UTF-8 becomes U+FFFD, so the guest always receives valid JSON.
func appendString(dst []byte, s string, max int) []byte {
	if max >= 0 && len(s) > max {
		s = cutString(s, max)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
