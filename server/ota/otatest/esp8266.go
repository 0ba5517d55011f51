package otatest

import (
	"crypto/sha256"
	"encoding/binary"
)

// ESP8266Options describe an ESP8266_RTOS_SDK v3 application image (see package ota,
// image_esp8266.go). Zero values take the defaults noted.
type ESP8266Options struct {
	Version     string // esp_app_desc_t.version; "v-1.0.0" when empty
	ProjectName string // "demo" when empty
	IDFVersion  string // "v3.4" when empty
	// NoAppDesc leaves esp_app_desc_t out (an SDK older than v3.3).
	NoAppDesc bool
	// Size, when larger than the default layout, grows the flash text segment so the image
	// is about Size bytes.
	Size int
}

// ESP8266Image returns a valid image in the layout the SDK's esptool writes: the flash-mapped
// .flash.text then .flash.rodata (starting with esp_app_desc_t), then the IRAM and DRAM
// segments, the checksum and the appended SHA-256.
func ESP8266Image(o ESP8266Options) []byte {
	if o.Version == "" {
		o.Version = "v-1.0.0"
	}
	if o.ProjectName == "" {
		o.ProjectName = "demo"
	}
	if o.IDFVersion == "" {
		o.IDFVersion = "v3.4"
	}
	type seg struct {
		addr uint32
		n    int
	}
	segs := []seg{{0x40210010, 8192}, {0x40230008, 2048}, {0x40100000, 4096}, {0x3FFE8000, 1024}}
	if o.Size > 16384 {
		segs[0].n += (o.Size - 16384) &^ 3
	}
	b := []byte{0xE9, byte(len(segs)), 2, 0x40} // DIO, 4 MB, 40 MHz
	b = binary.LittleEndian.AppendUint32(b, 0x40100004)
	sum := byte(0xEF)
	for i, s := range segs {
		b = binary.LittleEndian.AppendUint32(b, s.addr)
		b = binary.LittleEndian.AppendUint32(b, uint32(s.n))
		data := make([]byte, s.n)
		for j := range data {
			data[j] = byte(j*5 + i)
		}
		if i == 1 && !o.NoAppDesc {
			copy(data, AppDesc(o.Version, o.ProjectName, o.IDFVersion))
		}
		for _, c := range data {
			sum ^= c
		}
		b = append(b, data...)
	}
	for len(b)%16 != 15 {
		b = append(b, 0)
	}
	b = append(b, sum)
	h := sha256.Sum256(b)
	return append(b, h[:]...)
}
