package blob_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/blob/blobtest"
)

const (
	testBucket    = "firmware"
	testAccessKey = "AKIDESPADMINTEST"
	testSecretKey = "espadmin-test-secret-key"
	testRegion    = "us-east-1"
)

// fakeS3 is gofakes3 with its in-memory backend, served over real HTTP.
//
// gofakes3 checks no signature at all, so on its own it would serve a tampered or
// expired presigned URL. presignVerifier in front of it checks SigV4 query signatures
// the way S3 does (canonical request, derived key, X-Amz-Date + X-Amz-Expires against
// a clock the test can move). What this proves is that the URLs minio-go presigns for
// our store carry a valid signature over the right bucket, key and expiry, and that
// changing any part of them breaks it; S3 itself is what enforces them in production.
// Requests signed in the Authorization header (the store's own API calls) are passed
// through unchecked, as gofakes3 would.
type fakeS3 struct {
	backend *s3mem.Backend
	server  *httptest.Server
	skew    atomic.Int64 // added to time.Now by the verifier, in nanoseconds
}

func newFakeS3(t *testing.T) *fakeS3 {
	t.Helper()
	f := &fakeS3{backend: s3mem.New()}
	if err := f.backend.CreateBucket(testBucket); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	faker := gofakes3.New(f.backend)
	f.server = httptest.NewServer(&presignVerifier{next: faker.Server(), now: f.now})
	t.Cleanup(f.server.Close)
	return f
}

func (f *fakeS3) now() time.Time { return time.Now().Add(time.Duration(f.skew.Load())) }

func (f *fakeS3) endpoint() string { return strings.TrimPrefix(f.server.URL, "http://") }

func (f *fakeS3) config(prefix string) blob.S3Config {
	return blob.S3Config{
		Endpoint: f.endpoint(), Bucket: testBucket, Prefix: prefix, Region: testRegion,
		AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey, PathStyle: true,
	}
}

func (f *fakeS3) objectNames(t *testing.T) []string {
	t.Helper()
	list, err := f.backend.ListBucket(testBucket, nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatalf("list bucket: %v", err)
	}
	var names []string
	for _, c := range list.Contents {
		names = append(names, c.Key)
	}
	return names
}

type presignVerifier struct {
	next http.Handler
	now  func() time.Time
}

func (v *presignVerifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") == "" {
		if err := v.check(r); err != nil {
			http.Error(w, "AccessDenied: "+err.Error(), http.StatusForbidden)
			return
		}
	}
	v.next.ServeHTTP(w, r)
}

func (v *presignVerifier) check(r *http.Request) error {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
		return errors.New("unsupported or missing algorithm")
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[0] != testAccessKey || cred[2] != testRegion || cred[3] != "s3" || cred[4] != "aws4_request" {
		return errors.New("bad credential")
	}
	amzDate := q.Get("X-Amz-Date")
	signedAt, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || cred[1] != amzDate[:8] {
		return errors.New("bad date")
	}
	expires, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || expires < 1 || expires > 7*24*3600 {
		return errors.New("bad expiry")
	}
	if v.now().After(signedAt.Add(time.Duration(expires) * time.Second)) {
		return errors.New("request has expired")
	}
	signed := q.Get("X-Amz-SignedHeaders")
	var headers strings.Builder
	for _, h := range strings.Split(signed, ";") {
		val := r.Header.Get(h)
		if h == "host" {
			val = r.Host
		}
		if val == "" {
			return fmt.Errorf("signed header %q missing", h)
		}
		headers.WriteString(h + ":" + strings.TrimSpace(val) + "\n")
	}
	var keys []string
	for k := range q {
		if k != "X-Amz-Signature" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var query []string
	for _, k := range keys {
		vals := append([]string(nil), q[k]...)
		sort.Strings(vals)
		for _, val := range vals {
			query = append(query, awsEscape(k, false)+"="+awsEscape(val, false))
		}
	}
	canonical := strings.Join([]string{
		r.Method, awsEscape(r.URL.Path, true), strings.Join(query, "&"),
		headers.String(), signed, "UNSIGNED-PAYLOAD",
	}, "\n")
	scope := strings.Join(cred[1:], "/")
	digest := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(digest[:])
	key := []byte("AWS4" + testSecretKey)
	for _, part := range cred[1:] {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(q.Get("X-Amz-Signature"))) {
		return errors.New("signature does not match")
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// awsEscape is SigV4's URI encoding: everything but unreserved characters (and "/" in
// paths) is percent-encoded with upper-case hex.
func awsEscape(s string, path bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '_' || c == '.' || c == '~' || (path && c == '/') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestS3Conformance(t *testing.T) {
	var fakes sync.Map // blob.Store -> *fakeS3, for the expire hook
	blobtest.Run(t,
		func(t *testing.T) blob.Store {
			f := newFakeS3(t)
			s, err := blob.NewS3(context.Background(), f.config("espadmin/test"))
			if err != nil {
				t.Fatalf("NewS3: %v", err)
			}
			fakes.Store(blob.Store(s), f)
			t.Cleanup(func() {
				fakes.Delete(blob.Store(s))
				// Nothing outside the prefix, and no multipart leftovers became objects.
				for _, name := range f.objectNames(t) {
					if !strings.HasPrefix(name, "espadmin/test/") {
						t.Errorf("object %q stored outside the prefix", name)
					}
				}
			})
			return s
		},
		httpFetch,
		func(t *testing.T, s blob.Store, key string) string {
			v, ok := fakes.Load(s)
			if !ok {
				t.Fatal("expire: unknown store")
			}
			u, err := s.SignedURL(context.Background(), key, time.Minute)
			if err != nil {
				t.Fatalf("SignedURL: %v", err)
			}
			// Move the verifier's clock past X-Amz-Date + X-Amz-Expires.
			v.(*fakeS3).skew.Store(int64(2 * time.Minute))
			return u
		},
	)
}

func TestS3PrefixAndURL(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s, err := blob.NewS3(context.Background(), f.config("/tenant-data/"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "releases/r1.bin", strings.NewReader("fw"), 10); err != nil {
		t.Fatal(err)
	}
	if names := f.objectNames(t); len(names) != 1 || names[0] != "tenant-data/releases/r1.bin" {
		t.Fatalf("bucket holds %q, want [tenant-data/releases/r1.bin]", names)
	}
	raw, err := s.SignedURL(context.Background(), "releases/r1.bin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != f.endpoint() || u.Path != "/"+testBucket+"/tenant-data/releases/r1.bin" {
		t.Fatalf("presigned URL %s: want path-style %s/%s/tenant-data/releases/r1.bin", raw, f.endpoint(), testBucket)
	}
	if got := u.Query().Get("X-Amz-Expires"); got != "3600" {
		t.Fatalf("X-Amz-Expires = %q, want 3600", got)
	}
	if _, err := s.SignedURL(context.Background(), "releases/r1.bin", 8*24*time.Hour); err == nil {
		t.Fatal("SignedURL accepted a ttl beyond S3's seven days")
	}
}

// TestS3FailedPutLeavesNothing looks at the bucket itself, not through the store: after
// failed multipart uploads no object exists anywhere in the bucket.
func TestS3FailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	s, err := blob.NewS3(context.Background(), f.config(""))
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xA5}, 11<<20) // three parts of 5 MiB
	if _, err := s.Put(context.Background(), "big.bin", bytes.NewReader(big), 10<<20); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("oversized Put: %v, want ErrTooLarge", err)
	}
	if names := f.objectNames(t); len(names) != 0 {
		t.Fatalf("bucket holds %q after failed uploads, want nothing", names)
	}
	obj, err := s.Put(context.Background(), "big.bin", bytes.NewReader(big), int64(len(big)))
	if err != nil {
		t.Fatalf("multipart Put: %v", err)
	}
	sum := sha256.Sum256(big)
	if obj.Size != int64(len(big)) || obj.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("multipart Put = %+v", obj)
	}
}

func TestNewS3Errors(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	tests := []struct {
		name string
		edit func(*blob.S3Config)
		want string
	}{
		{"missing bucket", func(c *blob.S3Config) { c.Bucket = "nope" }, `"nope"`},
		{"empty bucket", func(c *blob.S3Config) { c.Bucket = "" }, "bucket is empty"},
		{"empty endpoint", func(c *blob.S3Config) { c.Endpoint = "" }, "endpoint is empty"},
		{"endpoint with scheme", func(c *blob.S3Config) { c.Endpoint = "http://" + c.Endpoint }, "host[:port]"},
		{"bad prefix", func(c *blob.S3Config) { c.Prefix = "a/../b" }, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := f.config("")
			tt.edit(&cfg)
			_, err := blob.NewS3(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewS3 error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
