package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/store/blob"
	"github.com/espadmin/espadmin/store/blob/blobtest"
)

func localOptions() blob.Options {
	return blob.Options{SigningKey: testSigningKey, PublicBaseURL: "https://fleet.example.com"}
}

func TestOpenLocal(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	tests := []struct {
		name string
		url  string
		dir  string
	}{
		{"plain path", filepath.Join(base, "plain", "blobs"), filepath.Join(base, "plain", "blobs")},
		{"file URL", "file://" + filepath.Join(base, "file", "blobs"), filepath.Join(base, "file", "blobs")},
		{"file URL with localhost", "file://localhost" + filepath.Join(base, "lh"), filepath.Join(base, "lh")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := blob.Open(context.Background(), tt.url, localOptions())
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.url, err)
			}
			l, ok := s.(*blob.Local)
			if !ok || l.Dir() != tt.dir {
				t.Fatalf("Open(%q) = %T at %v, want *blob.Local at %s", tt.url, s, l, tt.dir)
			}
			fi, err := os.Stat(tt.dir)
			if err != nil || fi.Mode().Perm() != 0o700 {
				t.Fatalf("folder %s: %v, %v; want created with 0700", tt.dir, fi, err)
			}
			if _, err := s.Put(context.Background(), "k.bin", strings.NewReader("x"), 10); err != nil {
				t.Fatalf("Put: %v", err)
			}
		})
	}
}

func TestOpenS3(t *testing.T) {
	t.Parallel()
	f := newFakeS3(t)
	opts := blob.Options{S3: blob.S3Options{
		Endpoint: f.endpoint(), Region: testRegion, AccessKeyID: testAccessKey,
		SecretAccessKey: testSecretKey, PathStyle: true, Insecure: true,
	}}
	s, err := blob.Open(context.Background(), "s3://"+testBucket+"/fleet/blobs", opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, ok := s.(*blob.S3); !ok {
		t.Fatalf("Open returned %T, want *blob.S3", s)
	}
	if _, err := s.Put(context.Background(), "r.bin", strings.NewReader("fw"), 10); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if names := f.objectNames(t); len(names) != 1 || names[0] != "fleet/blobs/r.bin" {
		t.Fatalf("bucket holds %q, want [fleet/blobs/r.bin]", names)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	file := filepath.Join(base, "regular-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFakeS3(t)
	s3opts := blob.Options{S3: blob.S3Options{
		Endpoint: f.endpoint(), Region: testRegion, AccessKeyID: testAccessKey,
		SecretAccessKey: testSecretKey, PathStyle: true, Insecure: true,
	}}
	tests := []struct {
		name    string
		url     string
		opts    blob.Options
		want    []string // substrings the error must contain
		notWant string   // a secret the error must not contain
	}{
		{name: "empty", url: "", want: []string{"empty"}},
		{name: "blank", url: "  ", want: []string{"empty"}},
		{name: "unknown scheme", url: "ftp://host/path", want: []string{`"ftp://host/path"`, "unknown scheme"}},
		{name: "unknown scheme with password", url: "gs://user:hunter2@bucket/x", want: []string{"gs://xxxxx@bucket/x", "unknown scheme"}, notWant: "hunter2"},
		{name: "malformed", url: "s3://bucket/%zz", want: []string{"malformed", "s3://bucket/%zz"}},
		{name: "malformed with password", url: "s3://key:hunter2@bu cket/%zz", want: []string{"malformed", "xxxxx@"}, notWant: "hunter2"},
		{name: "s3 credentials in URL", url: "s3://key:hunter2@bucket/p", opts: s3opts, want: []string{"credentials"}, notWant: "hunter2"},
		{name: "s3 without bucket", url: "s3:///prefix", want: []string{"missing bucket"}},
		{name: "s3 query", url: "s3://bucket/p?region=x", want: []string{"query"}},
		{name: "s3 missing bucket", url: "s3://no-such-bucket/p", opts: s3opts, want: []string{`"s3://no-such-bucket/p"`, "does not exist"}},
		{name: "s3 bad prefix", url: "s3://" + testBucket + "/a/../b", opts: s3opts, want: []string{"prefix"}},
		{name: "file with host", url: "file://host/var/blobs", want: []string{"no host"}},
		{name: "file relative", url: "file:relative/path", want: []string{"absolute"}},
		{name: "unwritable folder", url: filepath.Join(file, "blobs"), opts: localOptions(), want: []string{"not writable", filepath.Join(file, "blobs")}},
		{name: "unwritable file URL", url: "file://" + file, opts: localOptions(), want: []string{"not writable", file}},
		{name: "local without signing key", url: filepath.Join(base, "nokey"), opts: blob.Options{PublicBaseURL: "https://x"}, want: []string{"signing key"}},
		{name: "local without base URL", url: filepath.Join(base, "nobase"), opts: blob.Options{SigningKey: testSigningKey}, want: []string{"base URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := blob.Open(context.Background(), tt.url, tt.opts)
			if err == nil {
				t.Fatalf("Open(%q) = %T, want an error", tt.url, s)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open(%q) error %q does not contain %q", tt.url, err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("Open(%q) error %q leaks %q", tt.url, err, tt.notWant)
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	good := []string{
		"a",
		"tenants/0f3c/releases/v-1.4.0.bin",
		"A-Z_a-z.0-9/x..y/z.",
		strings.Repeat("a", blob.MaxKeyLen),
	}
	for _, k := range good {
		if err := blob.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", k, err)
		}
	}
	for _, k := range blobtest.BadKeys {
		if err := blob.ValidateKey(k); err == nil {
			t.Errorf("ValidateKey(%q) = nil, want ErrInvalidKey", k)
		}
	}
}
