package ota_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/server/ota/otatest"
)

// An ESP8266_RTOS_SDK v3 image: 8-byte header, no chip ID, esp_app_desc_t at the start of
// the .flash.rodata segment (the second), checksum and SHA-256.
func TestParseESP8266Image(t *testing.T) {
	t.Parallel()
	data := otatest.ESP8266Image(otatest.ESP8266Options{Version: "v-2.1.0", ProjectName: "meter"})
	img, err := ota.ParseImage(iotest.OneByteReader(bytes.NewReader(data)), testLimit)
	if err != nil {
		t.Fatal(err)
	}
	if img.Chip != "esp8266" || img.App.Version != "v-2.1.0" || img.App.ProjectName != "meter" || img.App.IDFVersion != "v3.4" {
		t.Errorf("got %+v", img)
	}
	if img.SegmentCount != 4 || !img.HashAppended || img.SPIMode != 2 || img.SPISize != 4 || img.EntryAddr != 0x40100004 ||
		img.Size != int64(len(data)) {
		t.Errorf("header fields: %+v", img)
	}

	// Without an app description (an SDK before v3.3): accepted, and the policy hook still
	// runs (with no version), once the image is complete.
	bare := otatest.ESP8266Image(otatest.ESP8266Options{NoAppDesc: true})
	p := ota.NewParser(testLimit)
	called := 0
	p.OnAppDesc = func(img *ota.Image) error {
		called++
		if img.Chip != "esp8266" || img.App.Version != "" {
			t.Errorf("OnAppDesc saw %+v", img)
		}
		return nil
	}
	if _, err := p.Write(bare); err != nil {
		t.Fatal(err)
	}
	if img, err := p.Finish(); err != nil || img.App.Version != "" || called != 1 {
		t.Errorf("image without app description: %+v, %v, hook called %d times", img, err, called)
	}
}

func TestParseESP8266ImageRefuses(t *testing.T) {
	t.Parallel()
	good := otatest.ESP8266Image(otatest.ESP8266Options{})
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"flash size code 7", mutate(func(b []byte) []byte { b[3] = 0x70; return b }), "not an ESP8266 flash size"},
		{"zero segments", mutate(func(b []byte) []byte { b[1] = 0; return b }), "segment count 0"},
		{"corrupt data", mutate(func(b []byte) []byte { b[8+8+100] ^= 1; return b }), "checksum byte"},
		{"corrupt app description", mutate(func(b []byte) []byte { b[8+8+8192+8+20] ^= 1; return b }), "checksum byte"},
		{"corrupt hash", mutate(func(b []byte) []byte { b[len(b)-1] ^= 1; return b }), "appended SHA-256"},
		{"hash missing", good[:len(good)-32], "inside the appended SHA-256"},
		{"truncated in segment", good[:len(good)/2], "truncated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ota.ParseImage(bytes.NewReader(tc.data), testLimit)
			var ie *ota.ImageError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want an ImageError saying %q", err, tc.want)
			}
		})
	}
}
