package seal

import (
	"bytes"
	"errors"
	"fmt"
)

// keyCheckValue is the known value a key check seals; keyCheckAD binds it to its purpose.
var (
	keyCheckValue = []byte("espadmin master key check v1")
	keyCheckAD    = []byte("espadmin/key-check")
)

// ErrWrongKey means a key check was made with another key than the one given.
var ErrWrongKey = errors.New("seal: the key does not open the key check")

// NewKeyCheck seals the known value with key, for a database to keep: the returned ID names
// the key, and CheckKey later tells whether a key is the same one.
func NewKeyCheck(key []byte) (KeyID, []byte, error) {
	k, err := NewKeyring(key)
	if err != nil {
		return 0, nil, err
	}
	sealed, err := k.Seal(keyCheckValue, keyCheckAD)
	if err != nil {
		return 0, nil, err
	}
	return k.PrimaryID(), sealed, nil
}

// CheckKey returns nil when key opens sealed (made by NewKeyCheck), and an error wrapping
// ErrWrongKey, naming both key IDs, when it does not.
func CheckKey(key, sealed []byte) error {
	k, err := NewKeyring(key)
	if err != nil {
		return err
	}
	want, idErr := SealedKeyID(sealed)
	plain, err := k.Open(sealed, keyCheckAD)
	if err != nil || !bytes.Equal(plain, keyCheckValue) {
		if idErr != nil {
			return fmt.Errorf("%w (this key is %s)", ErrWrongKey, k.PrimaryID())
		}
		return fmt.Errorf("%w: it was made with key %s, this key is %s", ErrWrongKey, want, k.PrimaryID())
	}
	return nil
}
