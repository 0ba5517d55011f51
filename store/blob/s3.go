package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3PartSize is the multipart chunk size for uploads of unknown length. minio-go buffers
// one part in memory per upload, so this bounds a Put's memory; 5 MiB is the smallest
// part S3 accepts and still allows objects far beyond firmware sizes (10,000 parts).
const s3PartSize = 5 << 20

// cleanupTimeout bounds the checks that run after a failed upload; they run even when
// the caller's context was cancelled, since that is often why the upload failed.
const cleanupTimeout = 30 * time.Second

// S3Config locates a bucket on any S3-compatible service (AWS, MinIO, Garage, R2, ...).
type S3Config struct {
	// Endpoint is host[:port] without a scheme, e.g. "s3.eu-west-1.amazonaws.com".
	Endpoint string
	// Bucket must already exist; ESP Admin never creates or configures buckets.
	Bucket string
	// Prefix is prepended to every key ("espadmin" stores "tenants/x" as
	// "espadmin/tenants/x"), so one bucket can be shared with other data.
	Prefix string
	// Region is sent when signing; empty lets minio-go discover it.
	Region string
	// AccessKeyID and SecretAccessKey are static credentials.
	AccessKeyID, SecretAccessKey string
	// Secure selects HTTPS. Only turn it off for a service on a trusted network.
	Secure bool
	// PathStyle addresses the bucket as host/bucket instead of bucket.host, which most
	// self-hosted services (and any endpoint given as an IP address) require.
	PathStyle bool
	// Transport overrides the HTTP transport, for custom CAs or proxies. Nil: default.
	Transport http.RoundTripper
}

// S3 keeps blobs in an S3 bucket through minio-go. Downloads go straight from the bucket
// to devices through presigned URLs, so replicas never proxy firmware bytes.
type S3 struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"
}

var _ Store = (*S3)(nil)

// NewS3 connects to the bucket and checks that it exists, so a wrong endpoint, bucket or
// credential is reported at start-up rather than at the first release upload.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("blob: s3 endpoint is empty")
	}
	if strings.Contains(cfg.Endpoint, "://") || strings.Contains(cfg.Endpoint, "/") {
		return nil, fmt.Errorf("blob: s3 endpoint %q must be host[:port] without scheme or path", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("blob: s3 bucket is empty")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("blob: s3 prefix %q: %w", cfg.Prefix, err)
		}
		prefix += "/"
	}
	lookup := minio.BucketLookupAuto
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
		Secure:       cfg.Secure,
		Region:       cfg.Region,
		BucketLookup: lookup,
		Transport:    cfg.Transport,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3 client for %q: %w", cfg.Endpoint, err)
	}
	s := &S3{client: client, bucket: cfg.Bucket, prefix: prefix}
	if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *S3) name(key string) string { return s.prefix + key }

// Put streams r as a multipart upload of unknown length. The object appears only when
// the upload completes; on any error minio-go aborts the upload, and Put then checks
// that no new object is left under the key (removing one if the service disagrees).
func (s *S3) Put(ctx context.Context, key string, r io.Reader, maxSize int64) (Object, error) {
	if err := checkPut(key, maxSize); err != nil {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	name := s.name(key)
	before, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil && !isNotFound(err) {
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	existed := err == nil

	mr := newMeteredReader(ctx, r, maxSize)
	// An upload of unknown length sends an empty body as a chunked part, which S3
	// refuses (MissingContentLength); peek one byte so an empty object is sent with
	// an explicit length of zero instead.
	var first [1]byte
	var body io.Reader
	size := int64(-1)
	switch n, perr := io.ReadFull(mr, first[:]); {
	case perr == io.EOF:
		body, size = bytes.NewReader(nil), 0
	case perr != nil:
		return Object{}, fmt.Errorf("blob: put %q: %w", key, perr)
	default:
		body = io.MultiReader(bytes.NewReader(first[:n]), mr)
	}
	_, err = s.client.PutObject(ctx, s.bucket, name, body, size, minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		PartSize:    s3PartSize,
		// Parts go out with a Content-MD5 instead of a streaming (aws-chunked) payload
		// signature: every S3-compatible service checks Content-MD5, not all of them
		// decode aws-chunked bodies (some store the chunk framing as data). Over HTTPS
		// minio-go leaves the payload unsigned anyway; the size check below guards the rest.
		DisableContentSha256: true,
		SendContentMd5:       true,
	})
	if err == nil && mr.err != io.EOF {
		// The client finished without seeing the end of the stream; never keep that.
		err = fmt.Errorf("upload ended before the end of the input: %v", mr.err)
	}
	var info minio.ObjectInfo
	if err == nil {
		info, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		if err == nil && info.Size != mr.n {
			err = fmt.Errorf("stored %d bytes, sent %d", info.Size, mr.n)
		}
	}
	if err != nil {
		if cerr := s.discard(ctx, name, existed, before.ETag); cerr != nil {
			return Object{}, fmt.Errorf("blob: put %q: %w (cleanup: %v)", key, err, cerr)
		}
		return Object{}, fmt.Errorf("blob: put %q: %w", key, err)
	}
	return Object{Key: key, Size: mr.n, SHA256: mr.sum(), ModTime: info.LastModified}, nil
}

// discard makes sure a failed Put left nothing new under name: an object that was not
// there before, or that replaced the previous one, is removed.
func (s *S3) discard(ctx context.Context, name string, existed bool, etag string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("verify nothing was stored: %w", err)
	}
	if existed && info.ETag == etag {
		return nil
	}
	if err := s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("remove partial object: %w", err)
	}
	return nil
}

// Open reads a range with one ranged GET, pinned to the ETag seen by the preceding HEAD
// so that a concurrent overwrite fails the read instead of mixing two versions.
func (s *S3) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	name := s.name(key)
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, mapErr(err))
	}
	obj := Object{Key: key, Size: info.Size, ModTime: info.LastModified}
	n, err := rangeFor(info.Size, offset, length)
	if err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	if n == 0 {
		return io.NopCloser(strings.NewReader("")), obj, nil
	}
	var opts minio.GetObjectOptions
	if err := opts.SetMatchETag(info.ETag); err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
	}
	if offset != 0 || n != info.Size {
		if err := opts.SetRange(offset, offset+n-1); err != nil {
			return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, err)
		}
	}
	rc, err := s.client.GetObject(ctx, s.bucket, name, opts)
	if err != nil {
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, mapErr(err))
	}
	// GetObject is lazy; issue the request now so a missing object is reported here.
	if _, err := rc.Stat(); err != nil {
		rc.Close()
		return nil, Object{}, fmt.Errorf("blob: open %q: %w", key, mapErr(err))
	}
	return rc, obj, nil
}

// Stat describes key with a HEAD request.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, err)
	}
	info, err := s.client.StatObject(ctx, s.bucket, s.name(key), minio.StatObjectOptions{})
	if err != nil {
		return Object{}, fmt.Errorf("blob: stat %q: %w", key, mapErr(err))
	}
	return Object{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// Delete removes key; S3 itself treats a missing key as success.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.name(key), minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
		return fmt.Errorf("blob: delete %q: %w", key, err)
	}
	return nil
}

// SignedURL returns a SigV4 presigned GET URL; S3 accepts ttl from one second to seven
// days. Signing is local: it neither contacts the service nor checks that key exists.
func (s *S3) SignedURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", fmt.Errorf("blob: sign %q: %w", key, err)
	}
	if err := checkTTL(ttl); err != nil {
		return "", fmt.Errorf("blob: sign %q: %w", key, err)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, s.name(key), ttl, nil)
	if err != nil {
		return "", fmt.Errorf("blob: sign %q: %w", key, err)
	}
	return u.String(), nil
}

// Ping checks that the bucket exists and the credentials may see it.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: s3 bucket %q at %s: %w", s.bucket, s.client.EndpointURL().Host, err)
	}
	if !ok {
		return fmt.Errorf("blob: s3 bucket %q at %s does not exist", s.bucket, s.client.EndpointURL().Host)
	}
	return nil
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound
}

func mapErr(err error) error {
	if isNotFound(err) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}
