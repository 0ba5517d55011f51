package fleet

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
)

// SecretSize is the number of random bytes in a device secret (the MQTT password). 256 bits
// make guessing hopeless, which is why a plain SHA-256 (no slow password hash) is enough to
// store it: the broker can check thousands of connects per second.
const SecretSize = 32

// DeviceKeySize is the size of the per-device key that encrypts secret config values end to
// end (AES-256-GCM, docs/protocol.md §5).
const DeviceKeySize = 32

// NewSecret returns a new device secret: SecretSize random bytes in unpadded base64url, so it
// can be typed into an MQTT client and a CSV file without escaping.
func NewSecret() (string, error) {
	b := make([]byte, SecretSize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("fleet: random secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// HashSecret returns what the store keeps of a secret: SHA-256 of its text, which is exactly
// the MQTT password a device presents.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// SecretMatches compares a presented password with a stored hash in constant time.
func SecretMatches(password string, hash []byte) bool {
	return subtle.ConstantTimeCompare(HashSecret(password), hash) == 1
}

// DeviceKeyAD is the associated data the per-device key is sealed with: the key opens only in
// the row of the device (and tenant) it was made for. Whoever opens the key (the config
// service, the provisioning bundle) uses this function.
func DeviceKeyAD(tenantID, deviceID string) []byte {
	return []byte("espadmin-device-key\n" + tenantID + "\n" + deviceID)
}

func newDeviceKey() ([]byte, error) {
	k := make([]byte, DeviceKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("fleet: random device key: %w", err)
	}
	return k, nil
}
