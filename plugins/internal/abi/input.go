package abi

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/acctpool/acctpool/core"
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

// headerAllowed reports whether a response header (lower-cased) may reach
// a guest. Credentials never do: authorization, cookies and request
// headers are absent from the list.
func headerAllowed(name string) bool {
	switch name {
	case "retry-after", "www-authenticate", "content-type", "request-id", "x-request-id",
		"x-should-retry", "anthropic-organization-id":
		return true
	}
	return strings.HasPrefix(name, "anthropic-ratelimit-") || strings.HasPrefix(name, "x-ratelimit-")
}

// AppendInput appends the input JSON of one classification to dst, with
// the body cut to bodyMax bytes (at most [MaxBody]).
//
//	{"abi":1,"source":"token","status":403,"network":false,"streamRateLimit":false,
//	 "headers":{"retry-after":"30"},"body":"…","bodyTruncated":false,"message":"…",
//	 "builtin":{"class":"org_policy","retryAfterMs":0,"reason":"403 forbidden"}}
//
// Keys are fixed and new ones are only ever added. Header names are
// lower-cased, sorted, filtered by an allow-list, and their first value is
// cut to [MaxHeaderValue] bytes.
func AppendInput(dst []byte, f core.Failure, builtin core.Verdict, bodyMax int) []byte {
	if bodyMax > MaxBody || bodyMax < 0 {
		bodyMax = MaxBody
	}
	dst = append(dst, `{"abi":1,"source":`...)
	dst = appendString(dst, string(f.Source), -1)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(f.Status), 10)
	dst = append(dst, `,"network":`...)
	dst = strconv.AppendBool(dst, f.Network)
	dst = append(dst, `,"streamRateLimit":`...)
	dst = strconv.AppendBool(dst, f.StreamRateLimit)
	dst = append(dst, `,"headers":{`...)
	dst = appendHeaders(dst, f.Header)
	dst = append(dst, `},"body":`...)
	body := f.Body
	truncated := len(body) > bodyMax
	if truncated {
		body = body[:bodyMax]
	}
	dst = appendString(dst, string(body), -1)
	dst = append(dst, `,"bodyTruncated":`...)
	dst = strconv.AppendBool(dst, truncated)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, f.Message, MaxMessage)
	dst = append(dst, `,"builtin":{"class":`...)
	dst = appendString(dst, string(builtin.Class), -1)
	dst = append(dst, `,"retryAfterMs":`...)
	dst = strconv.AppendInt(dst, builtin.RetryAfterMs(), 10)
	dst = append(dst, `,"reason":`...)
	dst = appendString(dst, builtin.Reason, -1)
	return append(dst, "}}"...)
}

func appendHeaders(dst []byte, h http.Header) []byte {
	if len(h) == 0 {
		return dst
	}
	var names [16]string
	keys := names[:0]
	for k, v := range h {
		if len(v) == 0 {
			continue
		}
		if lk := strings.ToLower(k); headerAllowed(lk) && len(keys) < cap(names) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, strings.ToLower(k), -1)
		dst = append(dst, ':')
		dst = appendString(dst, h[k][0], MaxHeaderValue)
	}
	return dst
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
