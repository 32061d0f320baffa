package pgstore

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Keys encrypt the tokens the store keeps (access and refresh tokens, API
// keys) with AES-256-GCM. The first key encrypts; every key decrypts, so a
// key can be rotated without a moment when some machine cannot read the
// rows (see the package notes).
type Keys struct {
	keys []key
}

type key struct {
	id   [4]byte // first bytes of SHA-256 of the key: which key sealed a value
	aead cipher.AEAD
}

// sealVersion is the first byte of every sealed value: its layout is
// version (1) | key id (4) | nonce (12) | ciphertext and tag.
const sealVersion = 1

// LoadKeyFile reads a key file: one key per line, each the standard base64
// of 32 random bytes; blank lines and lines starting with # are ignored.
// The file must be a regular file that neither group nor others can read
// or write; any other mode is refused, because the keys unlock every token
// in the database.
func LoadKeyFile(path string) (*Keys, error) {
	if strings.TrimSpace(path) == "" {
		return nil, errors.New("the postgres store needs a key file to encrypt tokens: pass --store-key-file or set ACCTPOOL_STORE_KEY_FILE (create one with `acctpool store keygen FILE`)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("store key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("store key file %s has mode %s: group or others may access it; run `chmod 600 %s` (the keys unlock every token in the database)", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("store key file: %w", err)
	}
	ks, err := ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("store key file %s: %w", path, err)
	}
	return ks, nil
}

// ParseKeys reads the key file format (see [LoadKeyFile]). It never quotes
// the content.
func ParseKeys(data []byte) (*Keys, error) {
	ks := &Keys{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(t)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("line %d is not the base64 of a 32-byte key", line)
		}
		k, err := newKey(raw)
		if err != nil {
			return nil, err
		}
		ks.keys = append(ks.keys, k)
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("no key in the file (one base64 32-byte key per line)")
	}
	return ks, nil
}

func newKey(raw []byte) (key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return key{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return key{}, err
	}
	sum := sha256.Sum256(raw)
	var k key
	copy(k.id[:], sum[:4])
	k.aead = aead
	return k, nil
}

// NewKeyLine returns a fresh key in the key file format, with its newline.
func NewKeyLine() string {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(raw) + "\n"
}

// WriteKeyFile creates path (mode 0600, never overwriting) holding one
// fresh key.
func WriteKeyFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create store key file: %w", err)
	}
	if _, err := f.WriteString(NewKeyLine()); err != nil {
		f.Close()
		return fmt.Errorf("write store key file: %w", err)
	}
	return f.Close()
}

// seal encrypts plain with the current key, binding it to aad (the account
// id and the field), so that a sealed value moved to another row or column
// does not open.
func (ks *Keys) seal(plain, aad []byte) []byte {
	k := ks.keys[0]
	out := make([]byte, 0, 1+4+12+len(plain)+16)
	out = append(out, sealVersion)
	out = append(out, k.id[:]...)
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plain, aad)
}

// errUndecryptable is a sealed value no key opens.
var errUndecryptable = errors.New("a token in the database cannot be decrypted with the store key file's keys (wrong key file, or the key it was sealed with was removed)")

// open decrypts a value sealed by seal.
func (ks *Keys) open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 1+4+12+16 || sealed[0] != sealVersion {
		return nil, errUndecryptable
	}
	for _, k := range ks.keys {
		if !bytes.Equal(k.id[:], sealed[1:5]) {
			continue
		}
		plain, err := k.aead.Open(nil, sealed[5:17], sealed[17:], aad)
		if err != nil {
			return nil, errUndecryptable
		}
		return plain, nil
	}
	return nil, errUndecryptable
}

// current reports whether sealed was sealed with the current key.
func (ks *Keys) current(sealed []byte) bool {
	return len(sealed) >= 5 && bytes.Equal(sealed[1:5], ks.keys[0].id[:])
}
