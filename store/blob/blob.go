// Package blob stores firmware binaries outside the database.
//
// Release images are too large to live in a row and must be downloadable by devices
// without going through the API, so they are kept in a blob store: a local folder for
// single-binary installs, or any S3-compatible service for replicated deployments.
// Both hand out signed, expiring download URLs, so a device needs no credential of its
// own to fetch an update and, with S3, the server never proxies the bytes.
//
// Keys are slash-separated relative paths ("tenants/<id>/releases/<id>.bin"). They are
// validated by every method with ValidateKey, so a key can never name anything outside
// the store's folder or prefix.
//
// A Put is all-or-nothing: the object becomes visible only once every byte has arrived
// and its size and SHA-256 are known. An oversized, failed or cancelled upload leaves no
// object behind, and a failed overwrite leaves the previous object untouched.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Store keeps firmware binaries. Callers depend on this interface so that the local
// folder and S3 are interchangeable by configuration alone.
type Store interface {
	// Put streams r into key. It computes size and SHA-256 while streaming and never
	// holds the whole object in memory. If more than maxSize bytes arrive it returns
	// ErrTooLarge and stores nothing; if r fails mid-way nothing is stored: no partial
	// object is ever visible, and an existing object under key is left as it was.
	Put(ctx context.Context, key string, r io.Reader, maxSize int64) (Object, error)
	// Open returns a reader of length bytes starting at offset (length < 0: to the
	// end). The returned Object describes the whole blob, not the range. An offset
	// beyond the end returns ErrInvalidRange; a length past the end is cut short.
	Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error)
	// Stat describes key. Its SHA256 is empty: the hash is known only to Put, and
	// callers keep it with the release record.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes key. A missing key is not an error, so retries are safe.
	Delete(ctx context.Context, key string) error
	// SignedURL returns a download URL for key, valid for ttl, that needs no other
	// credential: it is what an OTA update command hands to a device.
	SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// Ping reports whether the store is reachable and usable, for readiness checks.
	Ping(ctx context.Context) error
}

// Object describes a stored blob.
type Object struct {
	// Key is the store-relative key, without any S3 prefix.
	Key string
	// Size is the length in bytes.
	Size int64
	// SHA256 is the lower-case hex SHA-256 of the content. Only Put sets it, because
	// neither backend can report it later without reading the whole object again.
	SHA256 string
	// ModTime is when the object was last written, as reported by the backend.
	ModTime time.Time
}

// Sentinel errors. They are always wrapped with the operation and key; test with errors.Is.
var (
	// ErrNotFound means no object exists under the key.
	ErrNotFound = errors.New("blob: not found")
	// ErrTooLarge means the upload exceeded the caller's size limit and was discarded.
	ErrTooLarge = errors.New("blob: object too large")
	// ErrInvalidKey means the key failed ValidateKey; nothing was touched.
	ErrInvalidKey = errors.New("blob: invalid key")
	// ErrInvalidRange means Open was asked for an offset outside the object.
	ErrInvalidRange = errors.New("blob: invalid range")
)

// MaxKeyLen bounds key length. It keeps keys well inside file-system path limits and
// the 1024-byte S3 key limit even after a prefix is added.
const MaxKeyLen = 512

// ValidateKey reports whether key is safe to use as a relative path in any backend.
//
// The rules are deliberately narrower than what file systems or S3 accept, so that a
// key means the same thing everywhere and can never escape the store's folder or
// prefix: non-empty, at most MaxKeyLen bytes, slash-separated segments that are each
// non-empty, made only of [A-Za-z0-9._-], not "." or "..", and not starting with "."
// (the local backend keeps its in-flight uploads in dot-files next to the objects).
// Everything else, including absolute paths, backslashes, control bytes, NUL and
// non-ASCII or invalid UTF-8, is refused with ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	}
	for i, seg := range strings.Split(key, "/") {
		switch {
		case seg == "" && i == 0:
			return fmt.Errorf("%w: %q is absolute", ErrInvalidKey, key)
		case seg == "":
			return fmt.Errorf("%w: %q has an empty segment", ErrInvalidKey, key)
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, seg)
		case seg[0] == '.':
			return fmt.Errorf("%w: %q has a segment starting with a dot", ErrInvalidKey, key)
		}
		for j := 0; j < len(seg); j++ {
			if !keyByte(seg[j]) {
				return fmt.Errorf("%w: %q contains byte %#x", ErrInvalidKey, key, seg[j])
			}
		}
	}
	return nil
}

func keyByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

// meteredReader counts and hashes what passes through it, refuses to pass more than
// max bytes and honours ctx. Errors are sticky and returned with n == 0: readers that
// fill a buffer with io.ReadFull-like loops drop an error that arrives together with
// the last bytes, which would let a truncated or oversized upload complete.
type meteredReader struct {
	ctx  context.Context
	r    io.Reader
	max  int64
	n    int64
	hash hash.Hash
	err  error
}

func newMeteredReader(ctx context.Context, r io.Reader, maxSize int64) *meteredReader {
	return &meteredReader{ctx: ctx, r: r, max: maxSize, hash: sha256.New()}
}

func (m *meteredReader) Read(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	if err := m.ctx.Err(); err != nil {
		m.err = err
		return 0, err
	}
	// Read at most one byte past the limit: enough to detect the overflow.
	if room := m.max - m.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := m.r.Read(p)
	if m.n+int64(n) > m.max {
		m.err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.max)
		return 0, m.err
	}
	if err != nil && err != io.EOF {
		m.err = err
		return 0, err
	}
	m.n += int64(n)
	m.hash.Write(p[:n])
	if err == io.EOF {
		m.err = io.EOF
	}
	return n, err
}

// sum returns the hex SHA-256 of everything passed through so far.
func (m *meteredReader) sum() string { return hex.EncodeToString(m.hash.Sum(nil)) }

func checkPut(key string, maxSize int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if maxSize <= 0 {
		return fmt.Errorf("max size %d must be positive", maxSize)
	}
	return nil
}

// rangeFor checks offset and length against size and returns the number of bytes to read.
func rangeFor(size, offset, length int64) (int64, error) {
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("%w: offset %d of %d bytes", ErrInvalidRange, offset, size)
	}
	if length < 0 || length > size-offset {
		return size - offset, nil
	}
	return length, nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fmt.Errorf("ttl %s must be at least one second", ttl)
	}
	return nil
}
