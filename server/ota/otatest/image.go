// Package otatest builds ESP32 application images byte by byte for tests and benchmarks, in
// the layout ESP-IDF's esptool writes (see package ota).
package otatest

import (
	"crypto/sha256"
	"encoding/binary"
)

// ImageOptions describe an image to build. Zero values take the defaults noted.
type ImageOptions struct {
	ChipID      uint16 // esp_chip_id_t; 0 is the ESP32
	Version     string // esp_app_desc_t.version; "v-1.0.0" when empty
	ProjectName string // "demo" when empty
	IDFVersion  string // "v5.2.1" when empty
	// Segments are the data lengths of the segments; {4096, 1024} when empty. The first must
	// be at least 256 bytes (it starts with esp_app_desc_t).
	Segments []int
	// Size, when larger than what Segments give, grows the last segment so the image is
	// about Size bytes.
	Size         int
	HashAppended bool
	// ELFSHA256, when 32 bytes long, is the SHA-256 of the ELF file the image was made from
	// (esp_app_desc_t.app_elf_sha256); otherwise the bytes 0, 1, … 31.
	ELFSHA256 []byte
}

// Image returns a valid application image.
func Image(o ImageOptions) []byte {
	if o.Version == "" {
		o.Version = "v-1.0.0"
	}
	if o.ProjectName == "" {
		o.ProjectName = "demo"
	}
	if o.IDFVersion == "" {
		o.IDFVersion = "v5.2.1"
	}
	segs := append([]int(nil), o.Segments...)
	if len(segs) == 0 {
		segs = []int{4096, 1024}
	}
	total := 24
	for _, s := range segs {
		total += 8 + s
	}
	if o.Size > total+48 {
		segs[len(segs)-1] += (o.Size - total - 48) &^ 3
	}

	b := make([]byte, 0, total+64)
	hdr := make([]byte, 24)
	hdr[0] = 0xE9
	hdr[1] = byte(len(segs))
	hdr[2] = 2    // DIO
	hdr[3] = 0x20 // 4 MB, 40 MHz
	binary.LittleEndian.PutUint32(hdr[4:8], 0x40081000)
	hdr[8] = 0xEE // wp_pin: not used
	binary.LittleEndian.PutUint16(hdr[12:14], o.ChipID)
	binary.LittleEndian.PutUint16(hdr[15:17], 0)
	binary.LittleEndian.PutUint16(hdr[17:19], 399)
	if o.HashAppended {
		hdr[23] = 1
	}
	b = append(b, hdr...)
	sum := byte(0xEF)
	addr := uint32(0x3F400020)
	for i, n := range segs {
		sh := make([]byte, 8)
		binary.LittleEndian.PutUint32(sh[0:4], addr)
		binary.LittleEndian.PutUint32(sh[4:8], uint32(n))
		b = append(b, sh...)
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(j*7 + i)
		}
		if i == 0 {
			copy(data, AppDesc(o.Version, o.ProjectName, o.IDFVersion))
			if len(o.ELFSHA256) == 32 {
				copy(data[144:176], o.ELFSHA256)
			}
		}
		for _, c := range data {
			sum ^= c
		}
		b = append(b, data...)
		addr += uint32(n) + 0x10000
	}
	for len(b)%16 != 15 {
		b = append(b, 0)
	}
	b = append(b, sum)
	if o.HashAppended {
		h := sha256.Sum256(b)
		b = append(b, h[:]...)
	}
	return b
}

// AppDesc returns a 256-byte esp_app_desc_t.
func AppDesc(version, project, idf string) []byte {
	d := make([]byte, 256)
	binary.LittleEndian.PutUint32(d[0:4], 0xABCD5432)
	binary.LittleEndian.PutUint32(d[4:8], 1)
	copy(d[16:48], version)
	copy(d[48:80], project)
	copy(d[80:96], "12:34:56")
	copy(d[96:112], "Jan  2 2030")
	copy(d[112:144], idf)
	for i := range 32 {
		d[144+i] = byte(i)
	}
	return d
}
