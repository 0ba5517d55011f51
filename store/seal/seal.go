// Package seal encrypts secrets at rest (external broker passwords, Bugsnag keys, secret
// config values, per-device keys) with AES-256-GCM.
//
// A sealed value is
//
//	version (1 byte, 1) | key ID (4 bytes) | nonce (12 bytes) | ciphertext and GCM tag (16 bytes)
//
// The key ID is the first 4 bytes of SHA-256 of the key, so a Keyring can hold the current key
// and older ones and pick the right one when opening: rotating the master key means sealing
// with a new primary while old values still open. The version byte and key ID are
// authenticated along with the caller's associated data, so neither can be altered.
//
// Associated data binds a ciphertext to where it is stored (for example the tenant and device
// ID): a value copied into another row does not open there. Nonces are random; with 96-bit
// nonces one key may seal about 2^32 values before the collision risk matters (NIST SP 800-38D
// §8.3), far beyond what ESP Admin stores.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

const (
	version    = 1
	keyIDSize  = 4
	nonceSize  = 12
	headerSize = 1 + keyIDSize + nonceSize
	tagSize    = 16
)

// Errors returned by Open. They carry no detail on purpose: a caller must not learn which
// part of a forged value was wrong.
var (
	// ErrUnknownKey means the value was sealed with a key this keyring does not hold.
	ErrUnknownKey = errors.New("seal: value was sealed with an unknown key")
	// ErrInvalid means the value is malformed, was tampered with, or belongs to other
	// associated data.
	ErrInvalid = errors.New("seal: value cannot be opened")
)

// KeyID identifies a key inside sealed values.
type KeyID uint32

// String formats the ID as 8 hex digits, as it appears in logs.
func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// IDOf returns the key ID of key: the first 4 bytes of its SHA-256.
func IDOf(key []byte) KeyID {
	sum := sha256.Sum256(key)
	return KeyID(binary.BigEndian.Uint32(sum[:keyIDSize]))
}

// Keyring seals with its primary key and opens with any key it holds. It is safe for
// concurrent use.
type Keyring struct {
	primary KeyID
	aeads   map[KeyID]cipher.AEAD
}

// NewKeyring returns a keyring that seals with primary and also opens values sealed with any
// of older. Every key must be KeySize bytes.
func NewKeyring(primary []byte, older ...[]byte) (*Keyring, error) {
	k := &Keyring{primary: IDOf(primary), aeads: map[KeyID]cipher.AEAD{}}
	for i, key := range append([][]byte{primary}, older...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("seal: key %d is %d bytes, want %d", i, len(key), KeySize)
		}
		id := IDOf(key)
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("seal: key %d has the same ID %s as an earlier key", i, id)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("seal: %w", err)
		}
		k.aeads[id] = aead
	}
	return k, nil
}

// PrimaryID is the ID of the key that Seal uses.
func (k *Keyring) PrimaryID() KeyID { return k.primary }

// Seal encrypts and authenticates plaintext, binding it to associatedData.
func (k *Keyring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = version
	binary.BigEndian.PutUint32(out[1:], uint32(k.primary))
	if _, err := rand.Read(out[1+keyIDSize : headerSize]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	nonce := out[1+keyIDSize : headerSize]
	return k.aeads[k.primary].Seal(out, nonce, plaintext, additional(out[:1+keyIDSize], associatedData)), nil
}

// Open authenticates and decrypts a value made by Seal with the same associatedData.
func (k *Keyring) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < headerSize+tagSize || sealed[0] != version {
		return nil, ErrInvalid
	}
	aead, ok := k.aeads[KeyID(binary.BigEndian.Uint32(sealed[1:]))]
	if !ok {
		return nil, ErrUnknownKey
	}
	nonce := sealed[1+keyIDSize : headerSize]
	plain, err := aead.Open(nil, nonce, sealed[headerSize:], additional(sealed[:1+keyIDSize], associatedData))
	if err != nil {
		return nil, ErrInvalid
	}
	return plain, nil
}

// SealedKeyID reports which key sealed a value, so a rotation job can find values still
// sealed with an old key.
func SealedKeyID(sealed []byte) (KeyID, error) {
	if len(sealed) < headerSize+tagSize || sealed[0] != version {
		return 0, ErrInvalid
	}
	return KeyID(binary.BigEndian.Uint32(sealed[1:])), nil
}

// additional authenticates the header together with the caller's associated data. The
// header has a fixed length, so the concatenation is unambiguous.
func additional(header, associatedData []byte) []byte {
	return bytes.Join([][]byte{header, associatedData}, nil)
}

// DeriveKey derives an independent 32-byte key for one purpose from the master key with
// HKDF-SHA256 (RFC 5869), so that, for example, blob URL signing never uses the key that
// encrypts secrets. The purpose is the HKDF info; use a fixed string such as "blob-url-signing".
func DeriveKey(master []byte, purpose string) []byte {
	key, err := hkdf.Key(sha256.New, master, nil, "espadmin/"+purpose, KeySize)
	if err != nil {
		// hkdf.Key fails only when asked for more than 255 hash lengths of output.
		panic("seal: hkdf: " + err.Error())
	}
	return key
}
