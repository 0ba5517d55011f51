package ota_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/server/ota/otatest"
)

const testLimit = 16 << 20

func TestParseImage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts otatest.ImageOptions
		chip string
	}{
		{"esp32", otatest.ImageOptions{ChipID: 0x0000, Version: "v-1.2.3"}, "esp32"},
		{"esp32s3 with hash", otatest.ImageOptions{ChipID: 0x0009, Version: "v-2.0.0", HashAppended: true}, "esp32s3"},
		{"esp32c3 one segment", otatest.ImageOptions{ChipID: 0x0005, Segments: []int{256}}, "esp32c3"},
		{"esp32c6 many segments", otatest.ImageOptions{ChipID: 0x000D, Segments: []int{300, 1, 2, 3, 0, 17, 4096}}, "esp32c6"},
		{"esp32h2", otatest.ImageOptions{ChipID: 0x0010}, "esp32h2"},
		{"esp32s2", otatest.ImageOptions{ChipID: 0x0002}, "esp32s2"},
		{"esp32c2", otatest.ImageOptions{ChipID: 0x000C}, "esp32c2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := otatest.Image(tc.opts)
			// One byte at a time proves the parser does not depend on how reads are split.
			img, err := ota.ParseImage(iotest.OneByteReader(bytes.NewReader(data)), testLimit)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.opts.Version
			if want == "" {
				want = "v-1.0.0"
			}
			if img.Chip != tc.chip || img.App.Version != want || img.App.ProjectName != "demo" ||
				img.App.IDFVersion != "v5.2.1" || img.App.Date != "Jan  2 2030" || img.App.Time != "12:34:56" {
				t.Errorf("got %+v", img)
			}
			if img.Size != int64(len(data)) || img.HashAppended != tc.opts.HashAppended || img.SPIMode != 2 || img.SPISize != 2 {
				t.Errorf("header fields: %+v", img)
			}
			if img.App.ELFSHA256[31] != 31 || img.App.SecureVersion != 1 || img.MaxChipRev != 399 || img.EntryAddr != 0x40081000 {
				t.Errorf("app desc fields: %+v", img.App)
			}
		})
	}
}

func TestParseImageTrailingDataAllowed(t *testing.T) {
	t.Parallel()
	data := append(otatest.Image(otatest.ImageOptions{HashAppended: true}), make([]byte, 4096)...)
	if _, err := ota.ParseImage(bytes.NewReader(data), testLimit); err != nil {
		t.Fatal(err)
	}
}

func TestParseImageRefuses(t *testing.T) {
	t.Parallel()
	good := otatest.Image(otatest.ImageOptions{HashAppended: true})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"text file", []byte("hello, this is not firmware at all, just some text\n"), "not an ESP32 application image"},
		{"ELF file", append([]byte("\x7fELF"), make([]byte, 100)...), "first byte 0x7f"},
		{"short header", good[:10], "shorter than the 24-byte image header"},
		{"zero segments", mutate(func(b []byte) []byte { b[1] = 0; return b }), "segment count 0"},
		{"17 segments", mutate(func(b []byte) []byte { b[1] = 17; return b }), "segment count 17"},
		{"bad SPI mode", mutate(func(b []byte) []byte { b[2] = 9; return b }), "SPI flash mode 9"},
		{"bad flash size", mutate(func(b []byte) []byte { b[3] = 0x90; return b }), "SPI flash size code 9"},
		{"unknown chip", mutate(func(b []byte) []byte { b[12], b[13] = 0x34, 0x12; return b }), "chip ID 0x1234"},
		{"bad hash flag", mutate(func(b []byte) []byte { b[23] = 7; return b }), "hash_appended is 7"},
		{"truncated in segment", good[:len(good)/2], "truncated"},
		{"truncated before checksum", good[:24+8+4096+8+1024], "before the checksum"},
		{"truncated in hash", good[:len(good)-5], "inside the appended SHA-256"},
		{"segment longer than the limit", mutate(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[24+4:], 0x7FFFFFFF)
			return b
		}), "more than the"},
		{"no app desc", mutate(func(b []byte) []byte { b[32] ^= 0xFF; return b }), "no esp_app_desc_t"},
		{"first segment too short", otatest.Image(otatest.ImageOptions{Segments: []int{0x10}}), "too few for esp_app_desc_t"},
		{"corrupt data", mutate(func(b []byte) []byte { b[24+8+1000] ^= 1; return b }), "checksum byte"},
		{"corrupt hash", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "appended SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ota.ParseImage(bytes.NewReader(tc.data), testLimit)
			var ie *ota.ImageError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want an ImageError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestValidatingReaderFailsEarly(t *testing.T) {
	t.Parallel()
	data := otatest.Image(otatest.ImageOptions{ChipID: 0x0005, Version: "v-1.0.0", Size: 1 << 20})
	p := ota.NewParser(testLimit)
	refused := errors.New("refused by policy")
	p.OnAppDesc = func(img *ota.Image) error {
		if img.Chip != "esp32c3" || img.App.Version != "v-1.0.0" {
			t.Errorf("OnAppDesc saw %+v", img)
		}
		return refused
	}
	src := &countingReader{r: bytes.NewReader(data)}
	n, err := io.Copy(io.Discard, ota.NewValidatingReader(src, p))
	if !errors.Is(err, refused) {
		t.Fatalf("copy: %v", err)
	}
	if src.n > 64<<10 || n > 64<<10 {
		t.Errorf("read %d bytes (passed %d) before refusing; the policy check must come from the first bytes", src.n, n)
	}
}

func TestValidatingReaderTruncated(t *testing.T) {
	t.Parallel()
	data := otatest.Image(otatest.ImageOptions{})
	vr := ota.NewValidatingReader(bytes.NewReader(data[:len(data)-3]), ota.NewParser(testLimit))
	_, err := io.Copy(io.Discard, vr)
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("copy of a truncated image: %v", err)
	}
	if _, ok := vr.Image(); ok {
		t.Error("Image reports success after a truncated read")
	}
	vr = ota.NewValidatingReader(bytes.NewReader(data), ota.NewParser(testLimit))
	if _, err := io.Copy(io.Discard, vr); err != nil {
		t.Fatal(err)
	}
	if img, ok := vr.Image(); !ok || img.Size != int64(len(data)) {
		t.Errorf("Image() = %+v, %v", img, ok)
	}
}

func TestChipNames(t *testing.T) {
	t.Parallel()
	for id, name := range map[uint16]string{0x0000: "esp32", 0x0002: "esp32s2", 0x0009: "esp32s3", 0x0005: "esp32c3", 0x000D: "esp32c6", 0x0010: "esp32h2", 0x000C: "esp32c2"} {
		if got, ok := ota.ChipName(id); !ok || got != name {
			t.Errorf("ChipName(%#x) = %q, %v", id, got, ok)
		}
		if got, ok := ota.ChipID(name); !ok || got != id {
			t.Errorf("ChipID(%q) = %#x, %v", name, got, ok)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	if len(b) > 4096 {
		b = b[:4096]
	}
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// FuzzParseImage checks that no input makes the parser panic or accept a file whose
// declared structure does not fit it, and that split points do not change the verdict.
func FuzzParseImage(f *testing.F) {
	f.Add(otatest.Image(otatest.ImageOptions{}), 7)
	f.Add(otatest.Image(otatest.ImageOptions{HashAppended: true, ChipID: 0x0009}), 100)
	f.Add(otatest.Image(otatest.ImageOptions{Segments: []int{256}}), 1)
	f.Add([]byte{0xE9, 1, 0, 0}, 2)
	f.Add([]byte("not an image"), 3)
	f.Add(otatest.ESP8266Image(otatest.ESP8266Options{}), 9)
	f.Add(otatest.ESP8266Image(otatest.ESP8266Options{NoAppDesc: true}), 300)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		img, err := ota.ParseImage(bytes.NewReader(data), 1<<20)
		if err == nil {
			var sum int64 = 24
			if img.Chip == "esp8266" {
				sum = 8 // no extended header
			}
			for _, s := range img.Segments {
				sum += 8 + int64(s.Length)
			}
			if sum > int64(len(data)) || img.Size != int64(len(data)) || img.Chip == "" {
				t.Fatalf("accepted an inconsistent image: %+v (len %d)", img, len(data))
			}
		}
		if split < 0 {
			split = -split
		}
		if len(data) > 0 {
			split %= len(data)
		}
		p := ota.NewParser(1 << 20)
		_, err1 := p.Write(data[:split])
		_, err2 := p.Write(data[split:])
		_, err3 := p.Finish()
		if (errors.Join(err1, err2, err3) == nil) != (err == nil) {
			t.Fatalf("split at %d changes the verdict: %v vs %v %v %v", split, err, err1, err2, err3)
		}
	})
}
