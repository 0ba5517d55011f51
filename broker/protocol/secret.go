package protocol

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Secret config values are encrypted end to end for one device with AES-256-GCM (NIST SP
// 800-38D) under the device's 32-byte key from its provisioning bundle. AES-GCM rather than
// XChaCha20-Poly1305: it is in Go's standard library (this package imports nothing else) and
// the ESP32's mbedTLS runs it on the hardware AES engine. Nonces are 12 random bytes; a device
// key seals a few values per config version, far below the 2^32 random-nonce bound.
const (
	SecretKeySize   = 32
	SecretNonceSize = 12
	secretTagSize   = 16
	secretADPrefix  = "espadmin-cfg-v1"
)

// ErrSecret is returned by OpenSecret when a value does not decrypt: wrong key, wrong
// device, key or version (the associated data), or a tampered ciphertext.
var ErrSecret = errors.New("protocol: secret config value does not decrypt")

// SecretAssociatedData returns the AEAD associated data that binds a sealed value to where it
// belongs, so a ciphertext cannot be replayed to another device, key or config version:
//
//	espadmin-cfg-v1\n{deviceID}\n{key}\n{version}
//
// with version in decimal and no trailing newline.
func SecretAssociatedData(deviceID, key string, version int64) []byte {
	return []byte(secretADPrefix + "\n" + deviceID + "\n" + key + "\n" + strconv.FormatInt(version, 10))
}

// SealSecret encrypts plaintext — the JSON encoding of the value, e.g. "\"hunter2\"" or "42" —
// and returns the entry's value string: base64 (standard, padded) of nonce ‖ ciphertext ‖ tag.
// nonce is normally nil (12 random bytes are drawn); tests pass a fixed one.
func SealSecret(deviceKey []byte, deviceID, key string, version int64, plaintext, nonce []byte) (string, error) {
	aead, err := secretAEAD(deviceKey)
	if err != nil {
		return "", err
	}
	if nonce == nil {
		nonce = make([]byte, SecretNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return "", fmt.Errorf("protocol: nonce: %w", err)
		}
	}
	if len(nonce) != SecretNonceSize {
		return "", fmt.Errorf("protocol: nonce must be %d bytes", SecretNonceSize)
	}
	out := aead.Seal(append([]byte(nil), nonce...), nonce, plaintext, SecretAssociatedData(deviceID, key, version))
	return base64.StdEncoding.EncodeToString(out), nil
}

// OpenSecret reverses SealSecret: it returns the JSON encoding of the value.
func OpenSecret(deviceKey []byte, deviceID, key string, version int64, sealed string) ([]byte, error) {
	aead, err := secretAEAD(deviceKey)
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil || len(b) < SecretNonceSize+secretTagSize {
		return nil, ErrSecret
	}
	pt, err := aead.Open(nil, b[:SecretNonceSize], b[SecretNonceSize:], SecretAssociatedData(deviceID, key, version))
	if err != nil {
		return nil, ErrSecret
	}
	return pt, nil
}

func secretAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != SecretKeySize {
		return nil, fmt.Errorf("protocol: device key must be %d bytes", SecretKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
