package ota

import (
	"encoding/binary"
)

// ESP8266_RTOS_SDK v3.x application image, as its esptool writes it ("elf2image --version=3",
// components/esptool_py/Makefile.projbuild; class ESP8266V3FirmwareImage in its esptool.py;
// esp_image_header_t for CONFIG_IDF_TARGET_ESP8266 in esp_image_format.h):
//
//	common header                8 bytes: magic 0xE9, segment count, SPI mode, SPI
//	                             speed (low nibble) and size (high nibble), entry address;
//	                             no extended header (no chip ID: the chip is the ESP8266)
//	segment_count × { load_addr, data_len ; data }: the flash-mapped segments (load
//	                             address ≥ 0x40200000) first, then the RAM segments
//	padding, checksum byte       as for the ESP32 (0xEF XOR every segment data byte, ending
//	                             a 16-byte block)
//	32-byte SHA-256              of everything before it, always appended
//
// The SDK's linker script puts esp_app_desc_t (the same 256 bytes as ESP-IDF's) first in
// .flash.rodata, whose first 8 bytes esptool drops, so it starts the data of one flash-mapped
// segment, not necessarily the first. An image whose app description is missing is accepted
// without one (the SDK writes it since v3.3).
//
// The entry point tells the two formats apart: the ESP8266 starts in its IRAM
// (0x40100000–0x40107FFF), an address no ESP32-family chip executes from.
const (
	commonHeaderSize  = 8
	esp8266Chip       = "esp8266"
	esp8266IRAMStart  = 0x40100000
	esp8266IRAMEnd    = 0x40108000
	esp8266FlashStart = 0x40200000
	esp8266FlashEnd   = 0x40300000 // the 1 MB window the cache maps
	esp8266SizeCodes  = 9          // ESP_IMAGE_FLASH_SIZE_512KB … _16MB (5, 6 are the _C1 layouts; 7 unused)
)

type esp8266State struct {
	on       bool
	descSeen bool // an esp_app_desc_t was found
	descSeg  int  // the segment whose first bytes are being collected, -1 for none
}

func isESP8266Entry(addr uint32) bool { return addr >= esp8266IRAMStart && addr < esp8266IRAMEnd }

// parseESP8266Header reads the 8-byte header of an ESP8266 image.
func (p *Parser) parseESP8266Header(b []byte) error {
	img := &p.img
	img.readCommonHeader(b)
	img.Chip = esp8266Chip
	img.HashAppended = true
	if err := img.checkCommonHeader(); err != nil {
		return err
	}
	if img.SPISize > esp8266SizeCodes || img.SPISize == 7 {
		return imageErr("SPI flash size code %d is not an ESP8266 flash size (512 KB … 16 MB)", img.SPISize)
	}
	p.e8266 = esp8266State{on: true, descSeg: -1}
	p.state, p.need = stSegHeader, segmentHdrSize
	return nil
}

// esp8266Desc looks for esp_app_desc_t at the start of each flash-mapped segment until one is
// found; chunk is the next data of segment p.seg (p.left bytes were left before it).
func (p *Parser) esp8266Desc(chunk []byte) error {
	e := &p.e8266
	if e.descSeen {
		return nil
	}
	s := p.img.Segments[p.seg]
	if e.descSeg != p.seg {
		// a new segment: collect its first bytes if it is flash-mapped and long enough
		e.descSeg = -1
		p.desc = p.desc[:0]
		if p.left == s.Length && s.Length >= appDescSize && s.LoadAddr >= esp8266FlashStart && s.LoadAddr < esp8266FlashEnd {
			e.descSeg = p.seg
		}
	}
	if e.descSeg != p.seg || len(p.desc) >= appDescSize {
		return nil
	}
	take := min(appDescSize-len(p.desc), len(chunk))
	p.desc = append(p.desc, chunk[:take]...)
	if len(p.desc) < appDescSize {
		return nil
	}
	if binary.LittleEndian.Uint32(p.desc[0:4]) != appDescMagic {
		return nil // not this segment
	}
	e.descSeen = true
	return p.parseAppDesc()
}

// esp8266Finish runs the policy checks of an ESP8266 image without an app description, once
// the whole image is read.
func (p *Parser) esp8266Finish() error {
	if !p.e8266.on || p.e8266.descSeen {
		return nil
	}
	p.e8266.descSeen = true
	if p.OnAppDesc != nil {
		return p.OnAppDesc(&p.img)
	}
	return nil
}
