package blob

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MinSigningKeyLen is the shortest HMAC key NewLocal accepts: 256 bits, the output size
// of HMAC-SHA256, so the key is never the weak part of a signed URL.
const MinSigningKeyLen = 32

// LocalMountPath is where Local.Handler expects to be mounted; signed URLs point there.
const LocalMountPath = "/blobs/"

// tempPrefix starts the names of in-flight uploads. ValidateKey refuses segments that
// start with a dot, so a temp file can never be mistaken for, or collide with, a key.
const tempPrefix = ".upload-"

// StaleUploadAge is how long a local upload's temp file may go unmodified before Open
// removes it as the leftover of a killed process. An upload in progress writes its file
// continuously and the server cuts a stalled one after 15 minutes, so an hour never removes
// the in-flight upload of another replica sharing the folder.
const StaleUploadAge = time.Hour

// Local keeps blobs as files under one folder. It is the zero-dependency default: one
// binary, one data folder. Downloads are served by Handler through HMAC-signed URLs so
// devices need no account, and the files never sit in a web root.
type Local struct {
	dir     string
	key     []byte
	baseURL string
	now     func() time.Time
}

var _ Store = (*Local)(nil)

// NewLocal returns a store rooted at dir, which must already exist. signingKey (at
// least MinSigningKeyLen bytes) signs download URLs; keep it stable across restarts and
// identical on every replica, or URLs already handed to devices stop working. baseURL is
// the externally visible origin devices reach the server on, e.g.
// "https://fleet.example.com"; Handler must be served at baseURL + LocalMountPath.
func NewLocal(dir string, signingKey []byte, baseURL string) (*Local, error) {
	if len(signingKey) < MinSigningKeyLen {
		return nil, fmt.Errorf("blob: local signing key is %d bytes, need at least %d", len(signingKey), MinSigningKeyLen)
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("blob: local public base URL %q must be an absolute http(s) URL without query", baseURL)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local folder %q: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("blob: local folder: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("blob: local folder %q is not a directory", abs)
	}
	return &Local{
		dir:     abs,
		key:     append([]byte(nil), signingKey...),
		baseURL: strings.TrimRight(baseURL, "/"),
		now:     time.Now,
	}, nil
}

// SweepUploads removes the temp files of uploads (and write probes) under the folder that
// were last modified more than olderThan ago, and returns how many it removed. Open calls it
// once at start for StaleUploadAge.
func (l *Local) SweepUploads(olderThan time.Duration) (int, error) {
	cutoff := l.now().Add(-olderThan)
	removed := 0
	var errs []error
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if d.IsDir() || !d.Type().IsRegular() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // renamed into place meanwhile
				errs = append(errs, err)
			}
			return nil
		}
		if !fi.ModTime().Before(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("blob: sweep stale uploads: %w", err)
	}
	return removed, nil
}

// Dir returns the absolute folder the store writes to.
func (l *Local) Dir() string { return l.dir }

func (l *Local) path(key string) string {
	return filepath.Join(l.dir, filepath.FromSlash(key))
}

// Put writes r to a temp file next to the final path, syncs it and renames it into
// place, so readers see either the old object or the complete new one. The parent
// folder is synced too, so the rename survives a crash.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, maxSize int64) (Object, error) {
	if err := checkPut(key, maxSize); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	dst := l.path(key)
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	tmp, err := os.CreateTemp(parent, tempPrefix+"*")
	if err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	mr := newMeteredReader(ctx, r, maxSize)
	if _, err := io.Copy(tmp, mr); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: sync: %w", key, err)
	}
	fi, err := tmp.Stat()
	if err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	// Last chance to honour a cancellation before the object becomes visible.
	if err := ctx.Err(); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	done = true
	if err := syncDir(parent); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: sync folder: %w", key, err)
	}
	return Object{Key: key, Size: mr.n, SHA256: mr.sum(), ModTime: fi.ModTime()}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// openFile opens key as a regular file; anything else (missing, folder) is ErrNotFound,
// which is also what keeps Handler from ever listing a folder.
func (l *Local) openFile(key string) (*os.File, Object, error) {
	f, err := os.Open(l.path(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, Object{}, ErrNotFound
	}
	if err != nil {
		return nil, Object{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Object{}, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, Object{}, ErrNotFound
	}
	return f, Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Open returns a section of the file; the file handle stays valid even if the object
// is replaced or deleted while it is being read.
func (l *Local) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	f, obj, err := l.openFile(key)
	if err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	n, err := rangeFor(obj.Size, offset, length)
	if err != nil {
		f.Close()
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	return sectionReadCloser{io.NewSectionReader(f, offset, n), f}, obj, nil
}

type sectionReadCloser struct {
	*io.SectionReader
	io.Closer
}

// Stat describes key from the file system.
func (l *Local) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, err)
	}
	fi, err := os.Stat(l.path(key))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || (err == nil && !fi.Mode().IsRegular()) {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, err)
	}
	return Object{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes the file. Empty parent folders are left in place: they cost nothing
// and removing them would race with a concurrent Put into the same folder.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	p := l.path(key)
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	if fi.IsDir() {
		// A key that names a folder of other keys is not an object.
		return nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	return nil
}

// SignedURL returns baseURL + "/blobs/" + key + "?expires=<unix>&sig=<signature>". The
// signature is an HMAC-SHA256 over the key and the expiry, so neither can be changed
// without invalidating the URL. Keys need no escaping: ValidateKey admits only
// characters that are literal in a URL path.
func (l *Local) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("blob: sign %q: %w", key, err)
	}
	if err := checkTTL(ttl); err != nil {
		return "", fmt.Errorf("blob: sign %q: %w", key, err)
	}
	// Round the expiry up so the URL is valid for at least ttl.
	return l.signedURL(key, l.now().Add(ttl+time.Second-1).Unix()), nil
}

func (l *Local) signedURL(key string, expires int64) string {
	return l.baseURL + LocalMountPath + key + "?expires=" + strconv.FormatInt(expires, 10) +
		"&sig=" + base64.RawURLEncoding.EncodeToString(l.sign(key, expires))
}

// sign MACs a versioned, newline-separated message; keys cannot contain a newline, so
// no two (key, expiry) pairs share a message.
func (l *Local) sign(key string, expires int64) []byte {
	m := hmac.New(sha256.New, l.key)
	io.WriteString(m, "espadmin-blob-v1\n"+key+"\n"+strconv.FormatInt(expires, 10))
	return m.Sum(nil)
}

// Ping checks that the folder still exists and accepts new files.
func (l *Local) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: ping: %w", err)
	}
	if err := probeWritable(l.dir); err != nil {
		return fmt.Errorf("blob: local folder %q is not writable: %w", l.dir, err)
	}
	return nil
}

func probeWritable(dir string) error {
	f, err := os.CreateTemp(dir, tempPrefix+"probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// Handler serves signed download URLs. Mount it at LocalMountPath without stripping the
// prefix: http.Handle("/blobs/", local.Handler()). It answers GET and HEAD with Range,
// If-Range and ETag support (resumed OTA downloads over flaky Wi-Fi depend on ranges),
// 400 for a bad key, 403 for a missing, tampered or expired signature, and 404 for a
// missing object. It never lists folders.
func (l *Local) Handler() http.Handler {
	return http.HandlerFunc(l.serve)
}

func (l *Local) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, LocalMountPath)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if ValidateKey(key) != nil {
		http.Error(w, "invalid key", http.StatusBadRequest)
		return
	}
	if !l.verify(key, r.URL.Query()) {
		http.Error(w, "invalid or expired signature", http.StatusForbidden)
		return
	}
	f, obj, err := l.openFile(key)
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+path.Base(key)+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-transform")
	// Size and modification time change on every Put, so together they identify a
	// version without reading the file to hash it.
	h.Set("ETag", fmt.Sprintf(`"%x-%x"`, obj.Size, obj.ModTime.UnixNano()))
	http.ServeContent(w, r, "", obj.ModTime, f)
}

func (l *Local) verify(key string, q url.Values) bool {
	expires, err := strconv.ParseInt(q.Get("expires"), 10, 64)
	if err != nil {
		return false
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(q.Get("sig"))
	if err != nil || len(sig) != sha256.Size {
		return false
	}
	if !hmac.Equal(sig, l.sign(key, expires)) {
		return false
	}
	return l.now().Unix() <= expires
}
