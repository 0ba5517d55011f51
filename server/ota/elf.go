package ota

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/blob"
)

// MaxELFSize caps an uploaded ELF file. An ESP-IDF application's ELF with full debug
// information is usually 2–30 MB.
const MaxELFSize = 256 << 20

// symbolCacheSize is how many releases' symbol tables stay in memory. A table of a typical
// application holds a few MB; crashes concentrate on the releases in the field.
const symbolCacheSize = 8

// ELFBlobKey is where a release's ELF file lives in blob storage, beside its binary. Whether a
// release has an ELF file is whether this blob exists, so no schema change was needed.
func ELFBlobKey(tenantID, releaseID string) string {
	return "tenants/" + tenantID + "/releases/" + releaseID + ".elf"
}

// ELFInfo describes a release's ELF file.
type ELFInfo struct {
	Size   int64
	SHA256 string
}

// symbols holds the cache of symbol tables; it is part of Service.
type symbols struct {
	cache *lru.Cache[string, *symbolize.Table]
	loads singleflight.Group
}

func newSymbols() symbols {
	c, _ := lru.New[string, *symbolize.Table](symbolCacheSize) // only a size ≤ 0 fails
	return symbols{cache: c}
}

func (s *Service) symbolCache() *lru.Cache[string, *symbolize.Table] { return s.sym.cache }

// UploadELF stores the ELF file the release's image was built from. The file is hashed while
// it streams into a temporary file; unless its SHA-256 is the one the image carries
// (esp_app_desc_t.app_elf_sha256, which ESP-IDF's build writes), it is refused with a message
// saying which build it is from, and nothing is stored. Only then is it copied into blob
// storage (replacing an earlier upload, which can only be the same file).
func (s *Service) UploadELF(ctx context.Context, r store.Release, body io.Reader) (ELFInfo, error) {
	blobs, err := s.blobStore()
	if err != nil {
		return ELFInfo{}, err
	}
	if r.Image.ELFSHA256 == "" || strings.Trim(r.Image.ELFSHA256, "0") == "" {
		return ELFInfo{}, store.Invalid("elf", "the release's image carries no ELF SHA-256 (esp_app_desc_t.app_elf_sha256), so no ELF file can be matched to it")
	}
	tmp, err := os.CreateTemp("", "espadmin-elf-*")
	if err != nil {
		return ELFInfo{}, fmt.Errorf("ota: temporary ELF file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, MaxELFSize+1))
	if err != nil {
		return ELFInfo{}, err
	}
	if n == 0 {
		return ELFInfo{}, store.Invalid("elf", "is empty")
	}
	if n > MaxELFSize {
		return ELFInfo{}, store.Invalid("elf", fmt.Sprintf("is larger than %d MiB", MaxELFSize>>20))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if sum != r.Image.ELFSHA256 {
		return ELFInfo{}, store.Invalid("elf", fmt.Sprintf(
			"does not match release %s: its SHA-256 is %s…, the image was built from an ELF file with SHA-256 %s… (upload build/<project>.elf of the same build as the image)",
			r.Version, sum[:16], r.Image.ELFSHA256[:min(16, len(r.Image.ELFSHA256))]))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return ELFInfo{}, err
	}
	tab, err := symbolize.Load(tmp)
	if err != nil {
		return ELFInfo{}, store.Invalid("elf", strings.TrimPrefix(err.Error(), "symbolize: "))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return ELFInfo{}, err
	}
	obj, err := blobs.Put(ctx, ELFBlobKey(r.TenantID, r.ID), tmp, MaxELFSize)
	if err != nil {
		return ELFInfo{}, err
	}
	s.symbolCache().Add(r.TenantID+"/"+r.ID, tab)
	return ELFInfo{Size: obj.Size, SHA256: sum}, nil
}

// ELF describes the release's ELF file; ok is false when none was uploaded.
func (s *Service) ELF(ctx context.Context, r store.Release) (ELFInfo, bool, error) {
	blobs, err := s.blobStore()
	if err != nil {
		return ELFInfo{}, false, err
	}
	obj, err := blobs.Stat(ctx, ELFBlobKey(r.TenantID, r.ID))
	if errors.Is(err, blob.ErrNotFound) {
		return ELFInfo{}, false, nil
	}
	if err != nil {
		return ELFInfo{}, false, err
	}
	// Only a file whose SHA-256 matched is ever stored.
	return ELFInfo{Size: obj.Size, SHA256: r.Image.ELFSHA256}, true, nil
}

// Symbols returns the symbol table of a release's ELF file, from the cache or loaded from
// blob storage (once, however many reports ask at the same time). ok is false when the
// release has no ELF file.
func (s *Service) Symbols(ctx context.Context, r store.Release) (*symbolize.Table, bool, error) {
	key := r.TenantID + "/" + r.ID
	cache := s.symbolCache()
	if t, ok := cache.Get(key); ok {
		return t, true, nil
	}
	v, err, _ := s.sym.loads.Do(key, func() (any, error) {
		if t, ok := cache.Get(key); ok {
			return t, nil
		}
		t, err := s.loadSymbols(context.WithoutCancel(ctx), r)
		if err != nil {
			return nil, err
		}
		cache.Add(key, t)
		return t, nil
	})
	if errors.Is(err, blob.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v.(*symbolize.Table), true, nil
}

func (s *Service) loadSymbols(ctx context.Context, r store.Release) (*symbolize.Table, error) {
	blobs, err := s.blobStore()
	if err != nil {
		return nil, err
	}
	rc, _, err := blobs.Open(ctx, ELFBlobKey(r.TenantID, r.ID), 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// debug/elf reads at random offsets; S3 objects are read once into a temporary file.
	tmp, err := os.CreateTemp("", "espadmin-elf-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := io.Copy(tmp, io.LimitReader(rc, MaxELFSize)); err != nil {
		return nil, err
	}
	return symbolize.Load(tmp)
}

// SymbolicateFrames symbolicates a device's backtrace with the ELF file of the release the
// device ran (firmware version in the device's project). ok is false when there is no such
// release or it has no ELF file: the frames then stay raw.
func (s *Service) SymbolicateFrames(ctx context.Context, tenantID, projectID, version string, frames []protocol.Frame) ([]symbolize.Frame, bool, error) {
	if projectID == "" || len(frames) == 0 {
		return nil, false, nil
	}
	r, err := s.o.Store.ReleaseByVersion(ctx, tenantID, projectID, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	t, ok, err := s.Symbols(ctx, r)
	if err != nil || !ok {
		return nil, false, err
	}
	return t.SymbolicateRaw(RawFrames(frames)), true, nil
}

// RawFrames reads the addresses of protocol frames.
func RawFrames(frames []protocol.Frame) []symbolize.RawFrame {
	out := make([]symbolize.RawFrame, 0, len(frames))
	for _, f := range frames {
		pc, _ := strconv.ParseUint(strings.TrimPrefix(f.PC, "0x"), 16, 64)
		sp, _ := strconv.ParseUint(strings.TrimPrefix(f.SP, "0x"), 16, 64)
		out = append(out, symbolize.RawFrame{PC: pc, SP: sp})
	}
	return out
}
