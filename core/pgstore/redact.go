package pgstore

import (
	"net/url"
	"regexp"
	"strings"
)

const redactedPassword = "[redacted]"

// kvPassword matches password=... in a key=value connection string, quoted
// or not.
var kvPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// urlUserinfo matches the user:password@ part of a URL that net/url cannot
// parse.
var urlUserinfo = regexp.MustCompile(`(://[^:/@]*):[^@/]*@`)

// RedactConnString returns the connection string with its password (in
// the URL's user info, a password= parameter or a key=value pair) replaced
// by [redacted], for logs and errors.
func RedactConnString(s string) string {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return kvPassword.ReplaceAllString(urlUserinfo.ReplaceAllString(s, "$1:"+redactedPassword+"@"), "${1}"+redactedPassword)
		}
		if u.User != nil {
			if _, has := u.User.Password(); has {
				u.User = url.UserPassword(u.User.Username(), "REDACTEDPASSWORD")
			}
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "REDACTEDPASSWORD")
			u.RawQuery = q.Encode()
		}
		return strings.ReplaceAll(u.String(), "REDACTEDPASSWORD", redactedPassword)
	}
	return kvPassword.ReplaceAllString(s, "${1}"+redactedPassword)
}

// redactErr is err's message with any trace of the connection string's
// password removed (pgx does not put it in errors; this makes sure).
func redactErr(err error, conn string) string {
	msg := err.Error()
	if pw := passwordOf(conn); pw != "" {
		msg = strings.ReplaceAll(msg, pw, redactedPassword)
	}
	return msg
}

func passwordOf(conn string) string {
	if u, err := url.Parse(conn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if pw, ok := u.User.Password(); ok {
			return pw
		}
		return u.Query().Get("password")
	}
	if m := kvPassword.FindStringSubmatch(conn); m != nil {
		return strings.Trim(m[2], "'")
	}
	return ""
}
