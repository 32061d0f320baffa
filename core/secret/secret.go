package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"

	json "github.com/goccy/go-json"
)

// Secret is a credential: an OAuth access or refresh token, or an API key.
// Formatting it with fmt or slog prints a placeholder, so a secret that
// strays into a log line or an error message is not disclosed.
//
// # Notes
//
// MarshalJSON writes the real value because the state file must hold it.
// RPC results therefore use view types that have no Secret fields at all
// (core.AccountView); a test plants tokens and greps every output.
type Secret string

const redactedSecret = "[redacted]"

// String implements fmt.Stringer with a placeholder.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redactedSecret
}

// GoString implements fmt.GoStringer with a placeholder, for %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue implements slog.LogValuer with a placeholder.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Reveal returns the credential itself, for the one place that sends it.
func (s Secret) Reveal() string { return string(s) }

// MarshalJSON writes the real value; see the type's notes.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(string(s)) }

// Fingerprint returns the first 16 hex characters of SHA-256 of the secret,
// the upstream tokenFingerprint. It identifies a token without revealing it.
func (s Secret) Fingerprint() string {
	if s == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:16]
}
