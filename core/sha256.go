package core

import (
	"crypto/sha256"
	"encoding/hex"
)

// sha256Hex is the hex SHA-256 of s, for lock names derived from ids.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
