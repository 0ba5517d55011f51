package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/blob/blobtest"
)

var testSigningKey = []byte("0123456789abcdef0123456789abcdef")

// newLocal returns a store in a temp folder whose Handler is served over real HTTP at
// the base URL its signed URLs point to.
func newLocal(t *testing.T) *blob.Local {
	t.Helper()
	var l *blob.Local
	mux := http.NewServeMux()
	mux.Handle(blob.LocalMountPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Handler().ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	var err error
	l, err = blob.NewLocal(t.TempDir(), testSigningKey, srv.URL+"/")
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	return l
}

func httpFetch(t *testing.T, signedURL string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, signedURL, nil)
	if err != nil {
		t.Fatalf("request %s: %v", signedURL, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", signedURL, err)
	}
	return resp
}

func TestLocalConformance(t *testing.T) {
	blobtest.Run(t,
		func(t *testing.T) blob.Store {
			l := newLocal(t)
			t.Cleanup(func() { assertNoTempFiles(t, l.Dir()) })
			return l
		},
		httpFetch,
		func(t *testing.T, s blob.Store, key string) string {
			return s.(*blob.Local).SignedURLExpiringAt(key, time.Now().Add(-time.Second))
		},
	)
}

// assertNoTempFiles checks that no upload, failed or not, left a temp file behind.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("leftover temp file %s", p)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk %s: %v", dir, err)
	}
}

func TestNewLocalRefusesBadSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		key     []byte
		baseURL string
		want    string
	}{
		{"short key", dir, testSigningKey[:31], "http://x", "signing key"},
		{"no key", dir, nil, "http://x", "signing key"},
		{"empty base URL", dir, testSigningKey, "", "base URL"},
		{"relative base URL", dir, testSigningKey, "/x", "base URL"},
		{"other scheme", dir, testSigningKey, "ftp://x", "base URL"},
		{"missing folder", filepath.Join(dir, "nope"), testSigningKey, "http://x", "no such file"},
		{"folder is a file", file, testSigningKey, "http://x", "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := blob.NewLocal(tt.dir, tt.key, tt.baseURL)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewLocal error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestLocalSignedURLShape(t *testing.T) {
	t.Parallel()
	l, err := blob.NewLocal(t.TempDir(), testSigningKey, "https://fleet.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	l.SetClock(func() time.Time { return now })
	raw, err := l.SignedURL(context.Background(), "tenants/t1/releases/r1.bin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "https" || u.Host != "fleet.example.com" || u.Path != "/blobs/tenants/t1/releases/r1.bin" {
		t.Fatalf("signed URL %s has the wrong location", raw)
	}
	if got := u.Query().Get("expires"); got != "1700003600" {
		t.Fatalf("expires = %q, want %q", got, "1700003600")
	}
	if sig := u.Query().Get("sig"); len(sig) != 43 || strings.ContainsAny(sig, "+/=") {
		t.Fatalf("sig %q is not unpadded base64url of 32 bytes", sig)
	}
}

// TestLocalHandler pins the handler's answers that the suite only checks loosely.
func TestLocalHandler(t *testing.T) {
	t.Parallel()
	l, err := blob.NewLocal(t.TempDir(), testSigningKey, "http://device.test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789"), 100)
	if _, err := l.Put(ctx, "rel/fw.bin", bytes.NewReader(data), 10_000); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "rel/sub/x.bin", bytes.NewReader(data), 10_000); err != nil {
		t.Fatal(err)
	}
	sign := func(key string) string {
		u, err := l.SignedURL(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimPrefix(u, "http://device.test")
	}
	good := sign("rel/fw.bin")
	query := good[strings.Index(good, "?"):]
	otherKey := "/blobs/rel/sub/x.bin" + query
	other := sign("rel/sub/x.bin")
	past := strings.TrimPrefix(l.SignedURLExpiringAt("rel/fw.bin", time.Now().Add(-time.Second)), "http://device.test")

	tests := []struct {
		name    string
		method  string
		target  string
		header  http.Header
		status  int
		body    []byte
		headers map[string]string
	}{
		{name: "get", method: "GET", target: good, status: 200, body: data, headers: map[string]string{
			"Content-Type": "application/octet-stream", "Content-Length": "1000", "Accept-Ranges": "bytes",
			"X-Content-Type-Options": "nosniff", "Content-Disposition": `attachment; filename="fw.bin"`,
		}},
		{name: "head", method: "HEAD", target: good, status: 200, body: nil, headers: map[string]string{
			"Content-Type": "application/octet-stream", "Content-Length": "1000",
		}},
		{name: "range", method: "GET", target: good, header: http.Header{"Range": {"bytes=10-99"}}, status: 206, body: data[10:100],
			headers: map[string]string{"Content-Range": "bytes 10-99/1000", "Content-Length": "90"}},
		{name: "suffix range", method: "GET", target: good, header: http.Header{"Range": {"bytes=-5"}}, status: 206, body: data[995:]},
		{name: "unsatisfiable range", method: "GET", target: good, header: http.Header{"Range": {"bytes=5000-"}}, status: 416},
		{name: "post", method: "POST", target: good, status: 405, headers: map[string]string{"Allow": "GET, HEAD"}},
		{name: "no signature", method: "GET", target: "/blobs/rel/fw.bin", status: 403},
		{name: "only expiry", method: "GET", target: "/blobs/rel/fw.bin" + query[:strings.Index(query, "&")], status: 403},
		{name: "bad base64", method: "GET", target: strings.Replace(good, "sig=", "sig=%21", 1), status: 403},
		{name: "padded base64", method: "GET", target: good + "%3D", status: 403},
		{name: "signature of another key", method: "GET", target: otherKey, status: 403},
		{name: "expired", method: "GET", target: past, status: 403},
		{name: "other key own signature", method: "GET", target: other, status: 200, body: data},
		{name: "dot dot key", method: "GET", target: "/blobs/rel/../fw.bin" + query, status: 400},
		{name: "empty segment", method: "GET", target: "/blobs/rel//fw.bin" + query, status: 400},
		{name: "non-ASCII key", method: "GET", target: "/blobs/%C3%A9" + query, status: 400},
		// The key is the decoded path, so percent-encoding names the same object.
		{name: "encoded slash", method: "GET", target: "/blobs/rel%2Ffw.bin" + query, status: 200, body: data},
		{name: "empty key", method: "GET", target: "/blobs/" + query, status: 400},
		{name: "folder", method: "GET", target: sign("rel/sub"), status: 404},
		{name: "missing", method: "GET", target: sign("rel/none.bin"), status: 404},
		{name: "outside mount", method: "GET", target: "/other/rel/fw.bin" + query, status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.target, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			rec := httptest.NewRecorder()
			l.Handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("%s %s: status %d, want %d (body %q)", tt.method, tt.target, rec.Code, tt.status, rec.Body.String())
			}
			if tt.body != nil && !bytes.Equal(rec.Body.Bytes(), tt.body) {
				t.Fatalf("body: %d bytes, want %d", rec.Body.Len(), len(tt.body))
			}
			if tt.method == "HEAD" && rec.Body.Len() != 0 {
				t.Fatalf("HEAD returned a body of %d bytes", rec.Body.Len())
			}
			if tt.status >= 400 && bytes.Contains(rec.Body.Bytes(), data[:20]) {
				t.Fatal("error response carries object bytes")
			}
			for k, v := range tt.headers {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestLocalHandlerConditional(t *testing.T) {
	t.Parallel()
	l, err := blob.NewLocal(t.TempDir(), testSigningKey, "http://device.test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Put(ctx, "c.bin", strings.NewReader("first version"), 100); err != nil {
		t.Fatal(err)
	}
	u, _ := l.SignedURL(ctx, "c.bin", time.Minute)
	rec := httptest.NewRecorder()
	l.Handler().ServeHTTP(rec, httptest.NewRequest("GET", u, nil))
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || etag == "" {
		t.Fatalf("GET: status %d, ETag %q", rec.Code, etag)
	}

	req := httptest.NewRequest("GET", u, nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	l.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag: status %d, want 304", rec.Code)
	}

	// A resumed download must not splice two versions together: after an overwrite
	// the old ETag no longer matches and If-Range yields the whole new object.
	if _, err := l.Put(ctx, "c.bin", strings.NewReader("second version, longer"), 100); err != nil {
		t.Fatal(err)
	}
	req = httptest.NewRequest("GET", u, nil)
	req.Header.Set("Range", "bytes=5-")
	req.Header.Set("If-Range", etag)
	rec = httptest.NewRecorder()
	l.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.String() != "second version, longer" {
		t.Fatalf("If-Range with a stale ETag: status %d body %q, want 200 and the full new object", rec.Code, rec.Body.String())
	}
}

func TestLocalClockExpiry(t *testing.T) {
	t.Parallel()
	l, err := blob.NewLocal(t.TempDir(), testSigningKey, "http://device.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(context.Background(), "e.bin", strings.NewReader("x"), 10); err != nil {
		t.Fatal(err)
	}
	// Signed on a whole second, a one-minute URL is valid through second 60 exactly.
	now := time.Unix(1_800_000_000, 0)
	l.SetClock(func() time.Time { return now })
	u, err := l.SignedURL(context.Background(), "e.bin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after  time.Duration
		status int
	}{{0, 200}, {time.Minute, 200}, {time.Minute + time.Second, 403}, {time.Hour, 403}, {-time.Hour, 200}} {
		now2 := now.Add(tt.after)
		l.SetClock(func() time.Time { return now2 })
		rec := httptest.NewRecorder()
		l.Handler().ServeHTTP(rec, httptest.NewRequest("GET", u, nil))
		if rec.Code != tt.status {
			t.Errorf("%s after signing: status %d, want %d", tt.after, rec.Code, tt.status)
		}
	}
}

func TestLocalFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	l, err := blob.NewLocal(dir, testSigningKey, "http://device.test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := l.Put(ctx, "a/b/c.bin", strings.NewReader("data"), 10); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a", "b", "c.bin"))
	if err != nil {
		t.Fatalf("object is not at its path: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("object mode %v, want 0600", perm)
	}
	if fi, err := os.Stat(filepath.Join(dir, "a")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode: %v, %v; want 0700", fi.Mode(), err)
	}
	// A key below an existing object cannot be created on a file system; that is an
	// error, never a silent success or an ErrNotFound.
	if _, err := l.Put(ctx, "a/b/c.bin/d.bin", strings.NewReader("x"), 10); err == nil || errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Put below an object: %v, want an error", err)
	}
	if _, err := l.Stat(ctx, "a/b/c.bin/d.bin"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat below an object: %v, want ErrNotFound", err)
	}
	if _, err := l.Stat(ctx, "a/b"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat of a folder: %v, want ErrNotFound", err)
	}
	if err := l.Delete(ctx, "a/b"); err != nil {
		t.Fatalf("Delete of a folder: %v, want nil", err)
	}
	if _, err := l.Stat(ctx, "a/b/c.bin"); err != nil {
		t.Fatalf("Delete of a folder removed its contents: %v", err)
	}
	if err := l.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	assertNoTempFiles(t, dir)
}

// TestOpenSweepsStaleUploads plays a process killed during an upload: its ".upload-*" temp
// file stays behind. Opening the folder again removes temp files unmodified for longer than
// StaleUploadAge, keeps a younger one (another replica's upload in progress) and never
// touches objects.
func TestOpenSweepsStaleUploads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := blob.Options{SigningKey: testSigningKey, PublicBaseURL: "http://fleet.test"}
	l, err := blob.Open(t.Context(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj := "tenants/t1/releases/r1/firmware.bin"
	if _, err := l.Put(t.Context(), obj, strings.NewReader("image"), 100); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-blob.StaleUploadAge - time.Minute)
	write := func(rel string, mtime time.Time) string {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := []string{
		write("tenants/t1/releases/r2/.upload-123", old),
		write(".upload-probe-456", old),
	}
	kept := []string{
		write("tenants/t1/releases/r3/.upload-789", time.Now().Add(-time.Minute)), // in flight
		write("tenants/t1/releases/r4/old.bin", old),                              // not a temp file
		filepath.Join(dir, filepath.FromSlash(obj)),
	}
	if _, err := blob.Open(t.Context(), dir, opts); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stale upload %s still there (stat: %v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
