// Package blobtest is the conformance suite every blob.Store backend must pass, so the
// local folder and S3 behave the same to the OTA code whichever one a deployment uses.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/store/blob"
)

// OpenFunc returns a fresh, empty store; it is called once per case so cases share no
// state and can run in parallel. Cleanup belongs in t.Cleanup.
type OpenFunc func(t *testing.T) blob.Store

// FetchFunc performs a GET of a signed URL with the extra request headers, the way a
// device would: with no credential other than the URL.
type FetchFunc func(t *testing.T, signedURL string, header http.Header) *http.Response

// ExpireFunc returns a URL for key, produced by s's own signing, whose validity has
// already ended. Backends supply it because ending a validity without sleeping needs
// control over a clock that only the backend's test can reach.
type ExpireFunc func(t *testing.T, s blob.Store, key string) string

// Run runs the suite. Every case calls open for its own store.
func Run(t *testing.T, open OpenFunc, fetch FetchFunc, expire ExpireFunc) {
	t.Helper()
	if open == nil || fetch == nil || expire == nil {
		t.Fatal("blobtest: open, fetch and expire are all required")
	}
	h := harness{open: open, fetch: fetch, expire: expire}
	cases := []struct {
		name string
		run  func(t *testing.T, h harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"Ranges", testRanges},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"Missing", testMissing},
		{"TooLarge", testTooLarge},
		{"FailingReader", testFailingReader},
		{"FailedPutKeepsPrevious", testFailedPutKeepsPrevious},
		{"Cancelled", testCancelled},
		{"InvalidArguments", testInvalidArguments},
		{"InvalidKeys", testInvalidKeys},
		{"SignedURL", testSignedURL},
		{"SignedURLRange", testSignedURLRange},
		{"SignedURLTampered", testSignedURLTampered},
		{"SignedURLExpired", testSignedURLExpired},
		{"SignedURLMissingObject", testSignedURLMissingObject},
		{"Large", testLarge},
		{"Ping", testPing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, h)
		})
	}
}

type harness struct {
	open   OpenFunc
	fetch  FetchFunc
	expire ExpireFunc
}

var errBoom = errors.New("blobtest: reader failed on purpose")

const mib = 1 << 20

// payload returns n deterministic pseudo-random bytes; distinct seeds give distinct data
// so a read of the wrong object or offset cannot pass by accident.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func put(t *testing.T, s blob.Store, key string, data []byte) blob.Object {
	t.Helper()
	obj, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data))+1)
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if obj.Key != key || obj.Size != int64(len(data)) || obj.SHA256 != sum(data) {
		t.Fatalf("Put(%q) = %+v, want key %q, size %d, sha256 %s", key, obj, key, len(data), sum(data))
	}
	return obj
}

func read(t *testing.T, s blob.Store, key string, offset, length int64) ([]byte, blob.Object) {
	t.Helper()
	rc, obj, err := s.Open(context.Background(), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b, obj
}

func wantContent(t *testing.T, s blob.Store, key string, want []byte) {
	t.Helper()
	st, err := s.Stat(context.Background(), key)
	if err != nil {
		t.Fatalf("Stat(%q): %v", key, err)
	}
	if st.Key != key || st.Size != int64(len(want)) {
		t.Fatalf("Stat(%q) = %+v, want size %d", key, st, len(want))
	}
	got, _ := read(t, s, key, 0, -1)
	if !bytes.Equal(got, want) {
		t.Fatalf("content of %q: got %d bytes (sha256 %s), want %d bytes (sha256 %s)", key, len(got), sum(got), len(want), sum(want))
	}
}

func wantMissing(t *testing.T, s blob.Store, key string) {
	t.Helper()
	if obj, err := s.Stat(context.Background(), key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", key, obj, err)
	}
	rc, _, err := s.Open(context.Background(), key, 0, -1)
	if rc != nil {
		rc.Close()
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(%q) error = %v; want ErrNotFound", key, err)
	}
}

// failingReader yields n bytes of data and then fails.
type failingReader struct {
	data []byte
	n    int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	k := min(len(p), f.n, len(f.data))
	copy(p, f.data[:k])
	f.data, f.n = f.data[k:], f.n-k
	return k, nil
}

// streamReader generates n deterministic bytes without ever holding them all.
type streamReader struct {
	r    *rand.Rand
	left int64
	hash io.Writer
}

func (s *streamReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	for i := range p {
		p[i] = byte(s.r.Uint32())
	}
	s.hash.Write(p)
	s.left -= int64(len(p))
	return len(p), nil
}

func testRoundTrip(t *testing.T, h harness) {
	s := h.open(t)
	for _, n := range []int{0, 1, 1000, 64*1024 + 3} {
		key := fmt.Sprintf("tenants/t-1/releases/r_%d.v1.bin", n)
		data := payload(n, uint64(n))
		put(t, s, key, data)
		st, err := s.Stat(context.Background(), key)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if st.Key != key || st.Size != int64(n) || st.ModTime.IsZero() {
			t.Fatalf("Stat(%q) = %+v", key, st)
		}
		got, obj := read(t, s, key, 0, -1)
		if !bytes.Equal(got, data) || sum(got) != sum(data) {
			t.Fatalf("Open(%q) returned different bytes", key)
		}
		if obj.Key != key || obj.Size != int64(n) {
			t.Fatalf("Open(%q) object = %+v", key, obj)
		}
	}
}

func testRanges(t *testing.T, h harness) {
	s := h.open(t)
	data := payload(1000, 2)
	put(t, s, "r.bin", data)
	tests := []struct {
		name           string
		offset, length int64
		want           []byte
	}{
		{"start", 0, 10, data[:10]},
		{"middle", 10, 90, data[10:100]},
		{"to end", 990, -1, data[990:]},
		{"from middle to end", 500, -1, data[500:]},
		{"whole", 0, 1000, data},
		{"past end is cut", 995, 100, data[995:]},
		{"at end", 1000, -1, nil},
		{"empty", 10, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, obj := read(t, s, "r.bin", tt.offset, tt.length)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
			if obj.Size != 1000 {
				t.Fatalf("object size = %d, want the whole object's 1000", obj.Size)
			}
		})
	}
	for _, off := range []int64{-1, 1001} {
		rc, _, err := s.Open(context.Background(), "r.bin", off, 10)
		if rc != nil {
			rc.Close()
		}
		if !errors.Is(err, blob.ErrInvalidRange) {
			t.Fatalf("Open offset %d: error = %v, want ErrInvalidRange", off, err)
		}
	}
}

func testOverwrite(t *testing.T, h harness) {
	s := h.open(t)
	put(t, s, "fw/app.bin", payload(300, 3))
	second := payload(120, 4)
	put(t, s, "fw/app.bin", second)
	wantContent(t, s, "fw/app.bin", second)
}

func testDelete(t *testing.T, h harness) {
	s := h.open(t)
	ctx := context.Background()
	put(t, s, "d/x.bin", payload(10, 5))
	put(t, s, "d/y.bin", payload(10, 6))
	if err := s.Delete(ctx, "d/x.bin"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantMissing(t, s, "d/x.bin")
	wantContent(t, s, "d/y.bin", payload(10, 6))
	if err := s.Delete(ctx, "d/x.bin"); err != nil {
		t.Fatalf("second Delete: %v, want nil", err)
	}
	if err := s.Delete(ctx, "never/was.bin"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
}

func testMissing(t *testing.T, h harness) {
	s := h.open(t)
	wantMissing(t, s, "no/such.bin")
}

func testTooLarge(t *testing.T, h harness) {
	s := h.open(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		size    int
		maxSize int64
	}{
		{"one byte over", 101, 100},
		{"far over", 10_000, 100},
		// Past the first multipart part, so an S3 upload has parts to abort.
		{"over after several MiB", 6 * mib, 5*mib + mib/2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "big/" + strings.ReplaceAll(tt.name, " ", "-") + ".bin"
			_, err := s.Put(ctx, key, bytes.NewReader(payload(tt.size, 7)), tt.maxSize)
			if !errors.Is(err, blob.ErrTooLarge) {
				t.Fatalf("Put error = %v, want ErrTooLarge", err)
			}
			wantMissing(t, s, key)
		})
	}
	t.Run("exactly the limit", func(t *testing.T) {
		data := payload(100, 8)
		obj, err := s.Put(ctx, "big/exact.bin", bytes.NewReader(data), 100)
		if err != nil || obj.Size != 100 || obj.SHA256 != sum(data) {
			t.Fatalf("Put at the limit = %+v, %v", obj, err)
		}
		wantContent(t, s, "big/exact.bin", data)
	})
}

func testFailingReader(t *testing.T, h harness) {
	s := h.open(t)
	for _, n := range []int{0, 1000, 6 * mib} {
		key := fmt.Sprintf("fail/%d.bin", n)
		_, err := s.Put(context.Background(), key, &failingReader{data: payload(n+10, 9), n: n}, 100*mib)
		if !errors.Is(err, errBoom) {
			t.Fatalf("Put failing after %d bytes: error = %v, want the reader's error", n, err)
		}
		wantMissing(t, s, key)
	}
}

func testFailedPutKeepsPrevious(t *testing.T, h harness) {
	s := h.open(t)
	old := payload(500, 10)
	put(t, s, "keep.bin", old)
	if _, err := s.Put(context.Background(), "keep.bin", &failingReader{data: payload(2000, 11), n: 1500}, mib); !errors.Is(err, errBoom) {
		t.Fatalf("failing Put: %v", err)
	}
	wantContent(t, s, "keep.bin", old)
	if _, err := s.Put(context.Background(), "keep.bin", bytes.NewReader(payload(2000, 12)), 1000); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("oversized Put: %v", err)
	}
	wantContent(t, s, "keep.bin", old)
}

// cancelReader cancels its context after n bytes, as a client hanging up mid-upload does.
type cancelReader struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	k, err := c.r.Read(p[:min(len(p), max(c.n, 1))])
	c.n -= k
	return k, err
}

func testCancelled(t *testing.T, h harness) {
	s := h.open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "c/before.bin", bytes.NewReader(payload(100, 13)), mib); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v, want context.Canceled", err)
	}
	wantMissing(t, s, "c/before.bin")

	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r := &cancelReader{r: bytes.NewReader(payload(10_000, 14)), n: 4000, cancel: cancel}
	if _, err := s.Put(ctx, "c/during.bin", r, mib); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put cancelled mid-stream: %v, want context.Canceled", err)
	}
	wantMissing(t, s, "c/during.bin")
}

func testInvalidArguments(t *testing.T, h harness) {
	s := h.open(t)
	ctx := context.Background()
	for _, maxSize := range []int64{0, -1} {
		if _, err := s.Put(ctx, "a.bin", bytes.NewReader(nil), maxSize); err == nil {
			t.Fatalf("Put with maxSize %d succeeded", maxSize)
		}
	}
	wantMissing(t, s, "a.bin")
	for _, ttl := range []time.Duration{0, -time.Minute, time.Millisecond} {
		if u, err := s.SignedURL(ctx, "a.bin", ttl); err == nil {
			t.Fatalf("SignedURL with ttl %s = %q, want an error", ttl, u)
		}
	}
}

// BadKeys are keys every backend must refuse; exported so backend tests can reuse them.
var BadKeys = []string{
	"",
	".",
	"..",
	"../x",
	"/abs",
	"a/../b",
	"a/./b",
	"a//b",
	"a/",
	`a\b`,
	"a\x00b",
	"a\nb",
	"a\x7fb",
	"é",
	"a b",
	"a%2fb",
	"\xff",
	".hidden",
	strings.Repeat("a", blob.MaxKeyLen+1),
}

func testInvalidKeys(t *testing.T, h harness) {
	s := h.open(t)
	ctx := context.Background()
	methods := []struct {
		name string
		call func(key string) error
	}{
		{"Put", func(k string) error {
			_, err := s.Put(ctx, k, strings.NewReader("x"), 10)
			return err
		}},
		{"Open", func(k string) error {
			rc, _, err := s.Open(ctx, k, 0, -1)
			if rc != nil {
				rc.Close()
			}
			return err
		}},
		{"Stat", func(k string) error {
			_, err := s.Stat(ctx, k)
			return err
		}},
		{"Delete", func(k string) error { return s.Delete(ctx, k) }},
		{"SignedURL", func(k string) error {
			_, err := s.SignedURL(ctx, k, time.Minute)
			return err
		}},
	}
	for _, key := range BadKeys {
		for _, m := range methods {
			if err := m.call(key); !errors.Is(err, blob.ErrInvalidKey) {
				t.Errorf("%s(%q) error = %v, want ErrInvalidKey", m.name, key, err)
			}
		}
	}
	if err := blob.ValidateKey(strings.Repeat("a", blob.MaxKeyLen)); err != nil {
		t.Errorf("a key of exactly MaxKeyLen bytes was refused: %v", err)
	}
}

// get fetches u and returns status, headers and body.
func (h harness) get(t *testing.T, u string, header http.Header) (int, http.Header, []byte) {
	t.Helper()
	resp := h.fetch(t, u, header)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s: %v", u, err)
	}
	return resp.StatusCode, resp.Header, b
}

func sign(t *testing.T, s blob.Store, key string) string {
	t.Helper()
	u, err := s.SignedURL(context.Background(), key, time.Hour)
	if err != nil {
		t.Fatalf("SignedURL(%q): %v", key, err)
	}
	return u
}

func testSignedURL(t *testing.T, h harness) {
	s := h.open(t)
	data := payload(5000, 15)
	put(t, s, "tenants/t/releases/r.bin", data)
	status, _, body := h.get(t, sign(t, s, "tenants/t/releases/r.bin"), nil)
	if status != http.StatusOK || !bytes.Equal(body, data) {
		t.Fatalf("GET signed URL: status %d, %d bytes; want 200 and %d exact bytes", status, len(body), len(data))
	}
}

func testSignedURLRange(t *testing.T, h harness) {
	s := h.open(t)
	data := payload(5000, 16)
	put(t, s, "rng.bin", data)
	status, hdr, body := h.get(t, sign(t, s, "rng.bin"), http.Header{"Range": {"bytes=10-99"}})
	if status != http.StatusPartialContent {
		t.Fatalf("ranged GET status = %d, want 206", status)
	}
	if !bytes.Equal(body, data[10:100]) {
		t.Fatalf("ranged GET returned %d bytes, want bytes 10-99", len(body))
	}
	if cr := hdr.Get("Content-Range"); cr != "bytes 10-99/5000" {
		t.Fatalf("Content-Range = %q, want %q", cr, "bytes 10-99/5000")
	}
}

// alter changes a query value so that it stays well-formed but differs: numbers move
// (an expiry is pushed later), anything else has its first character replaced. The
// first character is used because the last one of unpadded base64 may only carry
// padding bits.
func alter(v string) string {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return strconv.FormatInt(n+1000, 10)
	}
	if v == "" {
		return "x"
	}
	if v[0] == 'A' {
		return "B" + v[1:]
	}
	return "A" + v[1:]
}

func testSignedURLTampered(t *testing.T, h harness) {
	s := h.open(t)
	one, two := payload(300, 17), payload(300, 18)
	put(t, s, "tamper/one.bin", one)
	put(t, s, "tamper/two.bin", two)
	signed, err := url.Parse(sign(t, s, "tamper/one.bin"))
	if err != nil {
		t.Fatalf("parse signed URL: %v", err)
	}
	q := signed.Query()

	// Control: the URL rebuilt from its parsed parts still works, so every refusal
	// below is caused by the change made, not by re-encoding.
	ctrl := *signed
	ctrl.RawQuery = q.Encode()
	if status, _, body := h.get(t, ctrl.String(), nil); status != http.StatusOK || !bytes.Equal(body, one) {
		t.Fatalf("re-encoded signed URL: status %d; want 200 with the object", status)
	}

	tampered := map[string]string{}
	for name := range q {
		u := *signed
		q2 := url.Values{}
		for k, v := range q {
			q2[k] = append([]string(nil), v...)
		}
		q2.Set(name, alter(q.Get(name)))
		u.RawQuery = q2.Encode()
		tampered["changed "+name] = u.String()
	}
	if len(q) == 0 {
		t.Fatal("signed URL has no query parameters to carry a signature")
	}
	noQuery := *signed
	noQuery.RawQuery = ""
	tampered["no signature"] = noQuery.String()
	for name := range q {
		u := *signed
		q2 := url.Values{}
		for k, v := range q {
			if k != name {
				q2[k] = v
			}
		}
		u.RawQuery = q2.Encode()
		tampered["missing "+name] = u.String()
	}
	otherKey := *signed
	otherKey.Path = strings.Replace(signed.Path, "one.bin", "two.bin", 1)
	otherKey.RawPath = ""
	if otherKey.Path == signed.Path {
		t.Fatalf("signed URL %s does not contain the key", signed)
	}
	tampered["other key"] = otherKey.String()

	for name, u := range tampered {
		t.Run(name, func(t *testing.T) {
			status, _, body := h.get(t, u, nil)
			if status < 400 || status > 499 {
				t.Fatalf("GET %s: status %d, want a 4xx refusal", u, status)
			}
			if bytes.Contains(body, one[:64]) || bytes.Contains(body, two[:64]) {
				t.Fatal("refused response carries object bytes")
			}
		})
	}
}

func testSignedURLExpired(t *testing.T, h harness) {
	s := h.open(t)
	data := payload(300, 19)
	put(t, s, "exp.bin", data)
	status, _, body := h.get(t, h.expire(t, s, "exp.bin"), nil)
	if status != http.StatusForbidden {
		t.Fatalf("GET expired URL: status %d, want 403", status)
	}
	if bytes.Contains(body, data[:64]) {
		t.Fatal("expired URL served object bytes")
	}
}

func testSignedURLMissingObject(t *testing.T, h harness) {
	s := h.open(t)
	put(t, s, "gone.bin", payload(10, 20))
	u := sign(t, s, "gone.bin")
	if err := s.Delete(context.Background(), "gone.bin"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if status, _, _ := h.get(t, u, nil); status != http.StatusNotFound {
		t.Fatalf("GET signed URL of a deleted object: status %d, want 404", status)
	}
}

func testLarge(t *testing.T, h harness) {
	s := h.open(t)
	const size = 2 * mib
	hash := sha256.New()
	src := &streamReader{r: rand.New(rand.NewPCG(21, 21)), left: size, hash: hash}
	obj, err := s.Put(context.Background(), "large/fw.bin", src, size)
	if err != nil {
		t.Fatalf("Put 2 MiB: %v", err)
	}
	want := hex.EncodeToString(hash.Sum(nil))
	if obj.Size != size || obj.SHA256 != want {
		t.Fatalf("Put 2 MiB = %+v, want size %d sha256 %s", obj, size, want)
	}
	rc, _, err := s.Open(context.Background(), "large/fw.bin", 0, -1)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != want {
		t.Fatalf("Open read %d bytes (err %v), hash match %v", n, err, hex.EncodeToString(got.Sum(nil)) == want)
	}
	resp := h.fetch(t, sign(t, s, "large/fw.bin"), nil)
	defer resp.Body.Close()
	got.Reset()
	n, err = io.Copy(got, resp.Body)
	if resp.StatusCode != http.StatusOK || err != nil || n != size || hex.EncodeToString(got.Sum(nil)) != want {
		t.Fatalf("download: status %d, %d bytes, err %v; want 200 and the exact %d bytes", resp.StatusCode, n, err, size)
	}
}

func testPing(t *testing.T, h harness) {
	s := h.open(t)
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
