package devicerrors

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// CoreDumpTTL is how long a device has to upload its core dump: the coredump command waits
// this long for an offline device, and its signed URL is valid as long.
const CoreDumpTTL = 24 * time.Hour

// CoreDumpPath is the upload route's path prefix; the tenant ID and report ID follow.
const CoreDumpPath = "/api/v1/coredumps/"

// Commander sends the coredump command (fleet.Commands).
type Commander interface {
	SendSystem(ctx context.Context, tenantID string, sc fleet.SystemCommand) (store.Command, error)
}

// CoreDumpOptions configure CoreDumps.
type CoreDumpOptions struct {
	Blobs    blob.Store
	Commands Commander
	// Key signs upload URLs (derived from the master key); PublicURL is the server's base URL.
	Key       []byte
	PublicURL string
	Logger    *slog.Logger
	Now       func() time.Time
}

// CoreDumps collects the whole core dumps devices announce in their crash reports
// (core_dump.size): a report that announces one gets a coredump command with a signed,
// expiring upload URL; the device PUTs the core dump there and erases it from flash once the
// upload was answered 201. The core dump is kept in blob storage beside the firmware, one per
// report (CoreDumpBlobKey), and handed to people through signed download URLs (for
// idf.py coredump-info/-debug with the release's ELF file).
//
// The URL signs tenant, report, device, size and expiry with an HMAC: whoever holds it may
// upload that one core dump of at most that size until it expires, and nothing else.
type CoreDumps struct {
	o CoreDumpOptions
}

// NewCoreDumps returns the collector.
func NewCoreDumps(o CoreDumpOptions) *CoreDumps {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	return &CoreDumps{o: o}
}

// CoreDumpBlobKey is where a report's core dump lives in blob storage.
func CoreDumpBlobKey(tenantID, reportID string) string {
	return "tenants/" + tenantID + "/coredumps/" + reportID + ".core"
}

// UploadError is a refused upload; Status is the HTTP status to answer.
type UploadError struct {
	Status int
	Reason string
}

func (e *UploadError) Error() string { return "core dump upload: " + e.Reason }

func (c *CoreDumps) sign(tenantID, reportID, deviceID string, size, expires int64) string {
	m := hmac.New(sha256.New, c.o.Key)
	fmt.Fprintf(m, "coredump\x00%s\x00%s\x00%s\x00%d\x00%d", tenantID, reportID, deviceID, size, expires)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// UploadURL returns the signed upload URL of a report's core dump and when it expires.
func (c *CoreDumps) UploadURL(tenantID, reportID, deviceID string, size int64) (string, time.Time) {
	exp := c.o.Now().Add(CoreDumpTTL).Truncate(time.Millisecond)
	q := url.Values{
		"device":  {deviceID},
		"size":    {strconv.FormatInt(size, 10)},
		"expires": {strconv.FormatInt(exp.UnixMilli(), 10)},
		"sig":     {c.sign(tenantID, reportID, deviceID, size, exp.UnixMilli())},
	}
	return c.o.PublicURL + CoreDumpPath + url.PathEscape(tenantID) + "/" + url.PathEscape(reportID) + "?" + q.Encode(), exp
}

// Request asks the device of a stored report to upload the core dump it announced. A failure
// is logged: the report is stored either way, and the device keeps its core dump.
func (c *CoreDumps) Request(ctx context.Context, rep store.ErrorReport, size int64) {
	u, exp := c.UploadURL(rep.TenantID, rep.ID, rep.DeviceID, size)
	_, err := c.o.Commands.SendSystem(ctx, rep.TenantID, fleet.SystemCommand{
		DeviceID: rep.DeviceID, TTL: CoreDumpTTL,
		Build: func(id string, expiresAt int64) protocol.Command {
			return protocol.Command{ID: id, Name: protocol.CommandCoreDump, ExpiresAt: expiresAt,
				CoreDump: &protocol.CoreDumpParams{URL: u, URLExpiresAt: exp.UnixMilli()}}
		},
	})
	if err != nil {
		c.o.Logger.Warn("ask for a core dump", "tenant_id", rep.TenantID, "device_id", rep.DeviceID, "report_id", rep.ID, "error", err)
	}
}

// Accept stores an uploaded core dump after checking the URL's signature, expiry and size.
// The body streams into blob storage; more bytes than signed, or fewer, store nothing.
func (c *CoreDumps) Accept(ctx context.Context, tenantID, reportID string, q url.Values, body io.Reader) (int64, error) {
	deviceID := q.Get("device")
	size, err1 := strconv.ParseInt(q.Get("size"), 10, 64)
	expires, err2 := strconv.ParseInt(q.Get("expires"), 10, 64)
	want := c.sign(tenantID, reportID, deviceID, size, expires)
	if err1 != nil || err2 != nil || !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
		return 0, &UploadError{Status: 403, Reason: "the upload URL's signature is not valid"}
	}
	if c.o.Now().UnixMilli() >= expires {
		return 0, &UploadError{Status: 403, Reason: "the upload URL has expired"}
	}
	obj, err := c.o.Blobs.Put(ctx, CoreDumpBlobKey(tenantID, reportID), io.LimitReader(body, size+1), size)
	if errors.Is(err, blob.ErrTooLarge) {
		return 0, &UploadError{Status: 413, Reason: fmt.Sprintf("more than the %d bytes announced", size)}
	}
	if err != nil {
		return 0, err
	}
	if obj.Size != size {
		_ = c.o.Blobs.Delete(context.WithoutCancel(ctx), obj.Key)
		return 0, &UploadError{Status: 400, Reason: fmt.Sprintf("%d bytes received, %d announced", obj.Size, size)}
	}
	c.o.Logger.Info("core dump stored", "tenant_id", tenantID, "device_id", deviceID, "report_id", reportID, "size", size)
	return size, nil
}

// Stat describes a report's stored core dump; ok is false when none was uploaded.
func (c *CoreDumps) Stat(ctx context.Context, tenantID, reportID string) (blob.Object, bool, error) {
	obj, err := c.o.Blobs.Stat(ctx, CoreDumpBlobKey(tenantID, reportID))
	if errors.Is(err, blob.ErrNotFound) {
		return obj, false, nil
	}
	return obj, err == nil, err
}

// DownloadURL returns a signed download URL of a report's core dump, valid for ttl.
func (c *CoreDumps) DownloadURL(ctx context.Context, tenantID, reportID string, ttl time.Duration) (string, error) {
	return c.o.Blobs.SignedURL(ctx, CoreDumpBlobKey(tenantID, reportID), ttl)
}
