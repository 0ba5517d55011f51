package account

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password policy. The minimum follows NIST SP 800-63B's advice to prefer length over
// composition rules; the maximum bounds the hashing work one request can cause.
const (
	MinPasswordLength = 10  // characters
	MaxPasswordBytes  = 256 // bytes
)

// HashParams are argon2id's cost parameters. The defaults (19 MiB, 2 passes, 1 lane) are
// OWASP's second recommended argon2id profile: about 30 ms per hash on one core, so a 2-core
// server handles a burst of logins without the hashing itself becoming the denial of service.
type HashParams struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultHashParams are the parameters new hashes use.
var DefaultHashParams = HashParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// maxHashMemory bounds the memory a stored hash may ask for, so a tampered row cannot make
// verification allocate gigabytes.
const maxHashMemory = 256 * 1024

// CheckPasswordPolicy returns a message for a password that is too short or too long.
func CheckPasswordPolicy(password string) error {
	if len(password) > MaxPasswordBytes {
		return fmt.Errorf("must be at most %d bytes", MaxPasswordBytes)
	}
	if !utf8.ValidString(password) {
		return errors.New("must be valid UTF-8")
	}
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return fmt.Errorf("must be at least %d characters", MinPasswordLength)
	}
	return nil
}

// HashPassword returns the PHC string $argon2id$v=19$m=…,t=…,p=…$salt$hash of password.
func HashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("account: read random salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches the PHC-encoded argon2id hash, comparing
// in constant time. A malformed hash never matches.
func VerifyPassword(hash, password string) bool {
	p, salt, key, err := parseHash(hash)
	if err != nil || len(password) > MaxPasswordBytes {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1
}

// needsRehash reports whether hash was made with other parameters than p.
func needsRehash(hash string, p HashParams) bool {
	hp, _, _, err := parseHash(hash)
	return err != nil || hp.Memory != p.Memory || hp.Time != p.Time || hp.Threads != p.Threads
}

func parseHash(hash string) (HashParams, []byte, []byte, error) {
	var p HashParams
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("not an argon2id PHC string")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errors.New("unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errors.New("bad argon2 parameters")
	}
	if p.Memory == 0 || p.Memory > maxHashMemory || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return p, nil, nil, errors.New("argon2 parameters out of range")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return p, nil, nil, errors.New("bad salt")
	}
	key, err := enc.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.New("bad key")
	}
	return p, salt, key, nil
}
