package ota

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
	"unicode/utf8"
)

// ESP-IDF application image format (components/bootloader_support/include/esp_app_format.h and
// components/esp_app_format/include/esp_app_desc.h; esptool's "image_info" prints the same):
//
//	esp_image_header_t          24 bytes, magic 0xE9
//	segment_count × { esp_image_segment_header_t (8 bytes: load_addr, data_len) ; data }
//	padding so that the checksum byte ends a 16-byte block, then the checksum byte
//	  (0xEF XOR every segment data byte)
//	32-byte SHA-256 of everything before it, when hash_appended is 1
//	anything else (secure boot signature blocks), ignored
//
// The first segment of an application image starts with esp_app_desc_t (256 bytes, magic word
// 0xABCD5432), which carries the version the firmware reports in its metadata.
const (
	imageMagic       = 0xE9
	imageHeaderSize  = 24
	segmentHdrSize   = 8
	maxSegments      = 16 // ESP_IMAGE_MAX_SEGMENTS
	appDescMagic     = 0xABCD5432
	appDescSize      = 256
	checksumSeed     = 0xEF
	appendedHashSize = 32
)

// Chips maps esp_chip_id_t (the extended header's chip_id) to the chip names ESP Admin uses
// (the same as IDF_TARGET).
var chips = map[uint16]string{
	0x0000: "esp32",
	0x0002: "esp32s2",
	0x0005: "esp32c3",
	0x0009: "esp32s3",
	0x000C: "esp32c2",
	0x000D: "esp32c6",
	0x0010: "esp32h2",
	0x0012: "esp32p4",
	0x0014: "esp32c61",
	0x0017: "esp32c5",
}

// ChipName returns the name of an esp_chip_id_t, and false for an ID no ESP32 chip uses.
func ChipName(id uint16) (string, bool) {
	n, ok := chips[id]
	return n, ok
}

// ChipID returns the esp_chip_id_t of a chip name, and false for an unknown name.
func ChipID(name string) (uint16, bool) {
	for id, n := range chips {
		if n == name {
			return id, true
		}
	}
	return 0, false
}

// Segment is one esp_image_segment_header_t.
type Segment struct {
	LoadAddr uint32
	Length   uint32
}

// AppDesc is the esp_app_desc_t at the start of the first segment.
type AppDesc struct {
	SecureVersion uint32
	Version       string // PROJECT_VER
	ProjectName   string
	Time          string // __TIME__ of the build
	Date          string // __DATE__ of the build
	IDFVersion    string
	ELFSHA256     [32]byte
}

// Image is what an ESP32 application image says about itself.
type Image struct {
	SegmentCount int
	SPIMode      byte // 0 QIO, 1 QOUT, 2 DIO, 3 DOUT, 4 FAST_READ, 5 SLOW_READ
	SPISpeed     byte // low nibble of byte 3
	SPISize      byte // high nibble of byte 3: 0 = 1 MB … 7 = 128 MB
	EntryAddr    uint32
	WPPin        byte
	SPIPinDrv    [3]byte
	ChipID       uint16
	Chip         string
	MinChipRev   uint16 // min_chip_rev_full: major × 100 + minor
	MaxChipRev   uint16
	HashAppended bool
	Segments     []Segment
	App          AppDesc
	// Size is the number of bytes read, trailing data included.
	Size int64
}

// ImageError says why a file is not an acceptable ESP32 application image. Its message is
// meant for the person who uploaded the file.
type ImageError struct {
	Reason string
}

func (e *ImageError) Error() string { return "invalid firmware image: " + e.Reason }

func imageErr(format string, args ...any) error {
	return &ImageError{Reason: fmt.Sprintf(format, args...)}
}

type parseState int

const (
	stHeader parseState = iota
	stExtHeader
	stSegHeader
	stSegData
	stChecksum
	stHash
	stTrailer
)

// Parser validates an image as its bytes arrive, so an upload can be checked while it streams
// into blob storage and refused at the first wrong byte, without holding the file in memory.
// Write feeds it; Finish says whether the whole image was there.
type Parser struct {
	img   Image
	state parseState
	buf   []byte // the fixed-size structure being collected
	need  int
	seg   int    // index of the segment being read
	left  uint32 // bytes left in the segment's data
	desc  []byte // the first appDescSize bytes of the first segment
	sum   byte
	h     hash.Hash
	limit int64
	err   error
	hdr   [commonHeaderSize]byte
	e8266 esp8266State // an ESP8266_RTOS_SDK image (image_esp8266.go)
	// OnAppDesc, when set, runs once the header and esp_app_desc_t are known (within the first
	// few hundred bytes); an error it returns fails the parse, so policy checks (chip, version)
	// refuse an upload early.
	OnAppDesc func(*Image) error
}

// NewParser returns a parser for an image of at most limit bytes (segments that claim more
// are refused before their data arrives).
func NewParser(limit int64) *Parser {
	return &Parser{state: stHeader, need: commonHeaderSize, h: sha256.New(), limit: limit, sum: checksumSeed}
}

// Write consumes the next bytes of the image. It returns the first validation error, and that
// error again on every later call.
func (p *Parser) Write(b []byte) (int, error) {
	if p.err != nil {
		return 0, p.err
	}
	n := len(b)
	for len(b) > 0 && p.err == nil {
		switch p.state {
		case stSegData:
			k := int(min(uint32(len(b)), p.left))
			chunk := b[:k]
			if p.e8266.on {
				p.err = p.esp8266Desc(chunk)
			} else if p.seg == 0 && len(p.desc) < appDescSize {
				take := min(appDescSize-len(p.desc), k)
				p.desc = append(p.desc, chunk[:take]...)
				if len(p.desc) == appDescSize {
					p.err = p.parseAppDesc()
				}
			}
			for _, c := range chunk {
				p.sum ^= c
			}
			p.h.Write(chunk)
			p.left -= uint32(k)
			p.img.Size += int64(k)
			b = b[k:]
			if p.left == 0 && p.err == nil {
				p.endSegment()
			}
		case stTrailer:
			p.img.Size += int64(len(b))
			b = nil
		default:
			k := min(len(b), p.need-len(p.buf))
			p.buf = append(p.buf, b[:k]...)
			if p.state != stHash {
				p.h.Write(b[:k])
			}
			p.img.Size += int64(k)
			b = b[k:]
			if len(p.buf) == p.need {
				p.err = p.complete()
				p.buf = p.buf[:0]
			}
		}
		if p.err == nil && p.img.Size > p.limit {
			p.err = imageErr("larger than %d bytes", p.limit)
		}
	}
	if p.err != nil {
		return 0, p.err
	}
	return n, nil
}

// complete handles a fully collected fixed-size structure.
func (p *Parser) complete() error {
	b := p.buf
	switch p.state {
	case stHeader:
		if b[0] != imageMagic {
			return imageErr("not an ESP32 application image (first byte 0x%02x, an image starts with 0xE9)", b[0])
		}
		copy(p.hdr[:], b)
		if isESP8266Entry(binary.LittleEndian.Uint32(b[4:8])) {
			return p.parseESP8266Header(b)
		}
		p.state, p.need = stExtHeader, imageHeaderSize-commonHeaderSize
	case stExtHeader:
		return p.parseHeader(b)
	case stSegHeader:
		s := Segment{LoadAddr: binary.LittleEndian.Uint32(b[0:4]), Length: binary.LittleEndian.Uint32(b[4:8])}
		if int64(s.Length) > p.limit {
			return imageErr("segment %d claims %d bytes, more than the %d-byte limit", p.seg, s.Length, p.limit)
		}
		if p.seg == 0 && s.Length < appDescSize && !p.e8266.on {
			return imageErr("first segment holds %d bytes, too few for esp_app_desc_t (%d): not an application image", s.Length, appDescSize)
		}
		p.img.Segments = append(p.img.Segments, s)
		p.left = s.Length
		p.state = stSegData
		if s.Length == 0 {
			p.endSegment()
		}
	case stChecksum:
		if got := b[len(b)-1]; got != p.sum {
			return imageErr("checksum byte is 0x%02x, the segments give 0x%02x: the image is corrupt", got, p.sum)
		}
		if p.img.HashAppended {
			p.state, p.need = stHash, appendedHashSize
		} else {
			p.state = stTrailer
		}
	case stHash:
		if want := p.h.Sum(nil); !bytes.Equal(b, want) {
			return imageErr("appended SHA-256 %s does not match the image (%s): the image is corrupt", hex.EncodeToString(b), hex.EncodeToString(want))
		}
		p.state = stTrailer
	}
	return nil
}

// parseHeader reads the ESP32 header: the 8-byte common header (kept in p.hdr) and b, the
// 16-byte extended header.
func (p *Parser) parseHeader(ext []byte) error {
	b := append(append([]byte(nil), p.hdr[:]...), ext...)
	if b[0] != imageMagic {
		return imageErr("not an ESP32 application image (first byte 0x%02x, an image starts with 0xE9)", b[0])
	}
	img := &p.img
	img.readCommonHeader(b)
	img.WPPin = b[8]
	copy(img.SPIPinDrv[:], b[9:12])
	img.ChipID = binary.LittleEndian.Uint16(b[12:14])
	// b[14] is the deprecated min_chip_rev.
	img.MinChipRev = binary.LittleEndian.Uint16(b[15:17])
	img.MaxChipRev = binary.LittleEndian.Uint16(b[17:19])
	// b[19:23] reserved.
	switch b[23] {
	case 0:
	case 1:
		img.HashAppended = true
	default:
		return imageErr("hash_appended is %d, must be 0 or 1", b[23])
	}
	if err := img.checkCommonHeader(); err != nil {
		return err
	}
	if img.SPISize > 7 {
		return imageErr("SPI flash size code %d is not 1 MB … 128 MB", img.SPISize)
	}
	name, ok := ChipName(img.ChipID)
	if !ok {
		return imageErr("chip ID 0x%04x in the extended header is not an ESP32 chip", img.ChipID)
	}
	img.Chip = name
	p.state, p.need = stSegHeader, segmentHdrSize
	return nil
}

// readCommonHeader reads the first 8 bytes, the same in every image format.
func (img *Image) readCommonHeader(b []byte) {
	img.SegmentCount = int(b[1])
	img.SPIMode = b[2]
	img.SPISpeed = b[3] & 0x0F
	img.SPISize = b[3] >> 4
	img.EntryAddr = binary.LittleEndian.Uint32(b[4:8])
}

func (img *Image) checkCommonHeader() error {
	switch {
	case img.SegmentCount < 1 || img.SegmentCount > maxSegments:
		return imageErr("segment count %d is outside 1..%d", img.SegmentCount, maxSegments)
	case img.SPIMode > 5:
		return imageErr("SPI flash mode %d is not one of QIO, QOUT, DIO, DOUT, FAST_READ, SLOW_READ", img.SPIMode)
	}
	return nil
}

func (p *Parser) parseAppDesc() error {
	d := p.desc
	if magic := binary.LittleEndian.Uint32(d[0:4]); magic != appDescMagic {
		return imageErr("no esp_app_desc_t at the start of the first segment (magic word 0x%08x, want 0xABCD5432): not an application image (a bootloader or partition table?)", magic)
	}
	a := &p.img.App
	a.SecureVersion = binary.LittleEndian.Uint32(d[4:8])
	// d[8:16] reserv1.
	a.Version = cString(d[16:48])
	a.ProjectName = cString(d[48:80])
	a.Time = cString(d[80:96])
	a.Date = cString(d[96:112])
	a.IDFVersion = cString(d[112:144])
	copy(a.ELFSHA256[:], d[144:176])
	if p.OnAppDesc != nil {
		return p.OnAppDesc(&p.img)
	}
	return nil
}

func (p *Parser) endSegment() {
	p.seg++
	if p.seg < p.img.SegmentCount {
		p.state, p.need = stSegHeader, segmentHdrSize
		return
	}
	// The checksum byte sits where esptool's align_file_position(f, 16) leaves it: at the end
	// of a 16-byte block.
	pad := 15 - int(p.img.Size%16)
	p.state, p.need = stChecksum, pad+1
}

// Finish reports whether the image was complete, and returns what it says about itself.
func (p *Parser) Finish() (Image, error) {
	if p.err != nil {
		return Image{}, p.err
	}
	switch p.state {
	case stTrailer:
		if err := p.esp8266Finish(); err != nil {
			p.err = err
			return Image{}, err
		}
		return p.img, nil
	case stHeader, stExtHeader:
		if p.img.Size == 0 {
			return Image{}, imageErr("the file is empty")
		}
		return Image{}, imageErr("only %d bytes: shorter than the %d-byte image header", p.img.Size, imageHeaderSize)
	case stSegHeader, stSegData:
		return Image{}, imageErr("truncated: the file ends at byte %d inside segment %d of %d", p.img.Size, p.seg, p.img.SegmentCount)
	case stChecksum:
		return Image{}, imageErr("truncated: the file ends at byte %d before the checksum byte", p.img.Size)
	default:
		return Image{}, imageErr("truncated: the file ends at byte %d inside the appended SHA-256", p.img.Size)
	}
}

// ParseImage reads a whole image from r (at most limit bytes).
func ParseImage(r io.Reader, limit int64) (Image, error) {
	p := NewParser(limit)
	if _, err := io.Copy(p, r); err != nil {
		return Image{}, err
	}
	return p.Finish()
}

// ValidatingReader passes an upload through while a Parser checks it. A validation error
// replaces the read's result, and a truncated image turns the final io.EOF into an error, so
// a consumer that stores what it reads (blob.Store.Put) gives up and stores nothing.
type ValidatingReader struct {
	r   io.Reader
	p   *Parser
	img Image
	err error
}

// NewValidatingReader returns a reader of r that validates with p.
func NewValidatingReader(r io.Reader, p *Parser) *ValidatingReader {
	return &ValidatingReader{r: r, p: p}
}

// Read implements io.Reader.
func (v *ValidatingReader) Read(b []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(b)
	if n > 0 {
		if _, perr := v.p.Write(b[:n]); perr != nil {
			v.err = perr
			return 0, perr
		}
	}
	if err == io.EOF {
		img, ferr := v.p.Finish()
		if ferr != nil {
			v.err = ferr
			return 0, ferr
		}
		v.img = img
		v.err = io.EOF
	}
	return n, err
}

// Image returns the validated image once Read has returned io.EOF.
func (v *ValidatingReader) Image() (Image, bool) {
	return v.img, v.err == io.EOF
}

// cString returns a NUL-terminated fixed-size field as a string, invalid UTF-8 replaced.
func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}
