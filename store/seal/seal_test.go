package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeyring(t *testing.T, primary []byte, older ...[]byte) *Keyring {
	t.Helper()
	k, err := NewKeyring(primary, older...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	k := newKeyring(t, newKey(t))
	for _, tt := range []struct {
		name      string
		plain, ad []byte
	}{
		{"empty", nil, nil},
		{"short", []byte("hunter2"), []byte("tenant/t1/device/d1")},
		{"binary", bytes.Repeat([]byte{0, 255}, 4096), []byte{0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal(tt.plain, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tt.plain) > 0 && bytes.Contains(sealed, tt.plain) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := k.Open(sealed, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plain) {
				t.Errorf("got %q, want %q", got, tt.plain)
			}
		})
	}
}

func TestNoncesDiffer(t *testing.T) {
	t.Parallel()
	k := newKeyring(t, newKey(t))
	a, _ := k.Seal([]byte("same"), nil)
	b, _ := k.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of the same plaintext are identical")
	}
}

func TestEveryByteFlipFails(t *testing.T) {
	t.Parallel()
	k := newKeyring(t, newKey(t))
	ad := []byte("tenant-a")
	sealed, err := k.Seal([]byte("a secret worth protecting"), ad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(sealed)
			bad[i] ^= mask
			if _, err := k.Open(bad, ad); err == nil {
				t.Fatalf("flip of byte %d with %#x opened", i, mask)
			}
		}
	}
	for n := range len(sealed) {
		if _, err := k.Open(sealed[:n], ad); err == nil {
			t.Fatalf("truncation to %d bytes opened", n)
		}
	}
	if _, err := k.Open(append(bytes.Clone(sealed), 0), ad); err == nil {
		t.Fatal("extended value opened")
	}
}

func TestWrongAssociatedData(t *testing.T) {
	t.Parallel()
	k := newKeyring(t, newKey(t))
	sealed, _ := k.Seal([]byte("password"), []byte("tenant/t1/device/d1"))
	for _, ad := range [][]byte{nil, []byte("tenant/t1/device/d2"), []byte("tenant/t1/device/d1 ")} {
		if _, err := k.Open(sealed, ad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AD %q: err = %v, want ErrInvalid", ad, err)
		}
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKeyBytes := newKey(t), newKey(t)
	before := newKeyring(t, oldKey)
	sealedOld, _ := before.Seal([]byte("old value"), []byte("ad"))

	after := newKeyring(t, newKeyBytes, oldKey)
	got, err := after.Open(sealedOld, []byte("ad"))
	if err != nil || string(got) != "old value" {
		t.Fatalf("old value after rotation: %q, %v", got, err)
	}
	sealedNew, _ := after.Seal([]byte("new value"), []byte("ad"))
	if id, _ := SealedKeyID(sealedNew); id != IDOf(newKeyBytes) || id != after.PrimaryID() {
		t.Errorf("new value sealed with %s, want primary %s", id, IDOf(newKeyBytes))
	}
	if id, _ := SealedKeyID(sealedOld); id != IDOf(oldKey) {
		t.Errorf("old value key ID %s, want %s", id, IDOf(oldKey))
	}
	if _, err := before.Open(sealedNew, []byte("ad")); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("old keyring opening new value: %v, want ErrUnknownKey", err)
	}
}

func TestKeyValidation(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewKeyring(make([]byte, n)); err == nil || !strings.Contains(err.Error(), "want 32") {
			t.Errorf("%d-byte key: err = %v", n, err)
		}
	}
	k := newKey(t)
	if _, err := NewKeyring(newKey(t), newKey(t), make([]byte, 10)); err == nil {
		t.Error("short older key accepted")
	}
	if _, err := NewKeyring(k, bytes.Clone(k)); err == nil {
		t.Error("duplicate key accepted")
	}
}

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	master := newKey(t)
	a, b := DeriveKey(master, "blob-url-signing"), DeriveKey(master, "secrets")
	if len(a) != KeySize || len(b) != KeySize {
		t.Fatalf("lengths %d, %d", len(a), len(b))
	}
	if bytes.Equal(a, b) || bytes.Equal(a, master) {
		t.Error("derived keys are not independent")
	}
	if !bytes.Equal(a, DeriveKey(master, "blob-url-signing")) {
		t.Error("derivation is not deterministic")
	}
	if bytes.Equal(a, DeriveKey(newKey(t), "blob-url-signing")) {
		t.Error("different masters give the same key")
	}
}

func TestLoadOrCreateMasterKey(t *testing.T) {
	t.Parallel()

	t.Run("generated with mode 0600 and reused", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		first, err := LoadOrCreateMasterKey(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != KeySize {
			t.Fatalf("key is %d bytes", len(first))
		}
		fi, err := os.Stat(filepath.Join(dir, MasterKeyFile))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		second, err := LoadOrCreateMasterKey(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, second) {
			t.Error("second start generated a different key")
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("data dir holds %d entries, want only %s", len(entries), MasterKeyFile)
		}
	})

	t.Run("configured wins", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		want := newKey(t)
		got, err := LoadOrCreateMasterKey(dir, base64.StdEncoding.EncodeToString(want))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got %x, %v", got, err)
		}
		if _, err := os.Stat(filepath.Join(dir, MasterKeyFile)); !os.IsNotExist(err) {
			t.Error("configured key still wrote a file")
		}
	})

	t.Run("wrong length names the setting", func(t *testing.T) {
		t.Parallel()
		_, err := LoadOrCreateMasterKey(t.TempDir(), base64.StdEncoding.EncodeToString(make([]byte, 20)))
		if err == nil || !strings.Contains(err.Error(), "ESPADMIN_MASTER_KEY") || !strings.Contains(err.Error(), "20 bytes") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("corrupt file", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, MasterKeyFile), []byte("short"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateMasterKey(dir, ""); err == nil || !strings.Contains(err.Error(), MasterKeyFile) {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("missing data dir", func(t *testing.T) {
		t.Parallel()
		if _, err := LoadOrCreateMasterKey(filepath.Join(t.TempDir(), "absent"), ""); err == nil {
			t.Error("no error")
		}
	})

	t.Run("concurrent first starts agree", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		keys := make([][]byte, 8)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Go(func() {
				k, err := LoadOrCreateMasterKey(dir, "")
				if err != nil {
					t.Error(err)
				}
				keys[i] = k
			})
		}
		wg.Wait()
		for i := range keys {
			if !bytes.Equal(keys[i], keys[0]) {
				t.Fatalf("start %d got a different key", i)
			}
		}
	})
}
