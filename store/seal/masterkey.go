package seal

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyFile is the name of the generated master key inside the data dir.
const MasterKeyFile = "master.key"

// LoadOrCreateMasterKey returns the master key. A configured key (base64 of exactly 32 bytes,
// from ESPADMIN_MASTER_KEY) wins; otherwise dataDir/master.key is read; otherwise a new random
// key is written there with mode 0600 (CreateMasterKey). The file holds the same base64 text
// as the setting, so it can be copied into ESPADMIN_MASTER_KEY when a deployment grows to
// several replicas.
func LoadOrCreateMasterKey(dataDir string, configured string) ([]byte, error) {
	key, err := LoadMasterKey(dataDir, configured)
	if errors.Is(err, fs.ErrNotExist) {
		return CreateMasterKey(dataDir)
	}
	return key, err
}

// LoadMasterKey returns the configured key (ESPADMIN_MASTER_KEY) or the one in
// dataDir/master.key; an error matching fs.ErrNotExist when there is neither.
func LoadMasterKey(dataDir string, configured string) ([]byte, error) {
	if configured != "" {
		key, err := decodeKey(configured)
		if err != nil {
			return nil, fmt.Errorf("invalid ESPADMIN_MASTER_KEY: %w", err)
		}
		return key, nil
	}
	return readKeyFile(filepath.Join(dataDir, MasterKeyFile))
}

// CreateMasterKey writes a new random key to dataDir/master.key with mode 0600 and returns
// it. The file is created atomically and never overwritten: if two processes start at once
// on one data dir, both end up with the key that reached the disk first.
func CreateMasterKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, MasterKeyFile)
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	if err := writeKeyFile(dataDir, path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path) // another process won the race
		}
		return nil, err
	}
	return key, nil
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("not valid base64 (generate one with: openssl rand -base64 32)")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d (generate one with: openssl rand -base64 32)", len(key), KeySize)
	}
	return key, nil
}

func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("read master key: %w", err)
	}
	key, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("invalid master key file %s: %w", path, err)
	}
	return key, nil
}

// writeKeyFile writes the key to a temporary file (created 0600), syncs it and links it into
// place; link fails with ErrExist instead of replacing a key another process just wrote.
func writeKeyFile(dir, path string, key []byte) error {
	tmp, err := os.CreateTemp(dir, ".master.key.*")
	if err != nil {
		return fmt.Errorf("write master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write master key: %w", err)
	}
	_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write master key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		return fmt.Errorf("write master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable; best effort on odd filesystems
		d.Close()
	}
	return nil
}
