package blob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Options carries what a storage URL cannot: secrets and the public origin.
type Options struct {
	// SigningKey signs local download URLs (at least MinSigningKeyLen bytes). It must be
	// the same on every replica and stable across restarts.
	SigningKey []byte
	// PublicBaseURL is the origin devices reach the server on; local download URLs
	// start with it.
	PublicBaseURL string
	// S3 configures the service an s3:// URL refers to.
	S3 S3Options
	// Logger reports the start-up sweep of a local folder's stale uploads; nil discards.
	Logger *slog.Logger
}

// S3Options holds the connection settings for s3:// storage URLs; the bucket and prefix
// come from the URL itself.
type S3Options struct {
	// Endpoint is host[:port]; empty means AWS ("s3.amazonaws.com").
	Endpoint string
	// Region is sent when signing; empty lets minio-go discover it.
	Region string
	// AccessKeyID and SecretAccessKey are static credentials.
	AccessKeyID, SecretAccessKey string
	// PathStyle addresses buckets as host/bucket; needed by most self-hosted services.
	PathStyle bool
	// Insecure talks plain HTTP instead of HTTPS.
	Insecure bool
}

// DefaultS3Endpoint is used when an s3:// URL is given without an endpoint.
const DefaultS3Endpoint = "s3.amazonaws.com"

// Open builds the store a storage URL names, so deployments choose a backend with one
// setting:
//
//	/var/lib/espadmin/blobs        local folder (relative paths are made absolute)
//	file:///var/lib/espadmin/blobs local folder
//	s3://bucket/optional/prefix    S3 bucket, settings from opts.S3
//
// A local folder is created (mode 0700) if missing and must be writable. Errors name
// the URL with any credentials in it redacted.
func Open(ctx context.Context, storageURL string, opts Options) (Store, error) {
	if strings.TrimSpace(storageURL) == "" {
		return nil, errors.New("blob: storage URL is empty")
	}
	shown := redactURL(storageURL)
	if !hasScheme(storageURL) {
		return openLocal(storageURL, opts)
	}
	u, err := url.Parse(storageURL)
	if err != nil {
		return nil, fmt.Errorf("blob: malformed storage URL %q", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("blob: storage URL %q: query and fragment are not supported", shown)
	}
	switch u.Scheme {
	case "file":
		if u.User != nil || (u.Host != "" && u.Host != "localhost") {
			return nil, fmt.Errorf("blob: storage URL %q: a file URL has no host; write file:///absolute/path", shown)
		}
		if u.Path == "" || !strings.HasPrefix(u.Path, "/") {
			return nil, fmt.Errorf("blob: storage URL %q: file path must be absolute", shown)
		}
		return openLocal(u.Path, opts)
	case "s3":
		if u.User != nil {
			return nil, fmt.Errorf("blob: storage URL %q: put S3 credentials in the S3 settings, not in the URL", shown)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("blob: storage URL %q: missing bucket; write s3://bucket/optional/prefix", shown)
		}
		endpoint := opts.S3.Endpoint
		if endpoint == "" {
			endpoint = DefaultS3Endpoint
		}
		s, err := NewS3(ctx, S3Config{
			Endpoint:        endpoint,
			Bucket:          u.Host,
			Prefix:          u.Path,
			Region:          opts.S3.Region,
			AccessKeyID:     opts.S3.AccessKeyID,
			SecretAccessKey: opts.S3.SecretAccessKey,
			Secure:          !opts.S3.Insecure,
			PathStyle:       opts.S3.PathStyle,
		})
		if err != nil {
			return nil, fmt.Errorf("blob: storage URL %q: %w", shown, err)
		}
		return s, nil
	default:
		return nil, fmt.Errorf("blob: storage URL %q: unknown scheme %q (want a path, file:// or s3://)", shown, u.Scheme)
	}
}

func openLocal(dir string, opts Options) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local folder %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("blob: local folder %q is not writable: %w", abs, err)
	}
	if err := probeWritable(abs); err != nil {
		return nil, fmt.Errorf("blob: local folder %q is not writable: %w", abs, err)
	}
	l, err := NewLocal(abs, opts.SigningKey, opts.PublicBaseURL)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// A process killed during an upload leaves its temp file behind; nothing else would
	// ever remove it. A failed sweep is not worth refusing to start over.
	n, err := l.SweepUploads(StaleUploadAge)
	if err != nil {
		log.Warn("sweep stale uploads", "dir", abs, "removed", n, "error", err)
	} else if n > 0 {
		log.Info("removed stale uploads", "dir", abs, "removed", n, "older_than", StaleUploadAge.String())
	}
	return l, nil
}

// redactURL hides the user-info part of a URL-like string, even one url.Parse rejects,
// so errors and logs never carry a password.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		authority = "xxxxx@" + authority[at+1:]
	}
	return scheme + "://" + authority + path
}

// hasScheme reports whether raw starts with "scheme:" (RFC 3986 section 3.1), so that a
// mistyped URL such as "file:data" is refused rather than created as a folder.
func hasScheme(raw string) bool {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}
