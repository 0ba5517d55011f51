// Command mkimage writes a valid ESP32 (or ESP8266) application image (package otatest) to a file, for
// tests that upload firmware through the API or the web UI.
//
//	go run ./ota/otatest/cmd/mkimage -chip esp32s3 -version v-1.1.0 -o firmware.bin
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/espadmin/espadmin/server/ota"
	"github.com/espadmin/espadmin/server/ota/otatest"
)

func main() {
	chip := flag.String("chip", "esp32", "target chip (esp32, esp32s3, esp32c3, …, or esp8266 for an ESP8266_RTOS_SDK v3 image)")
	version := flag.String("version", "v-1.0.0", "app version written in esp_app_desc_t")
	project := flag.String("project", "demo", "project name written in esp_app_desc_t")
	idf := flag.String("idf", "v5.2.1", "ESP-IDF version written in esp_app_desc_t")
	size := flag.Int("size", 0, "approximate image size in bytes (0: a small image)")
	out := flag.String("o", "", "output file (required)")
	flag.Parse()
	if err := run(*chip, *version, *project, *idf, *size, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(2)
	}
}

func run(chip, version, project, idf string, size int, out string) error {
	if out == "" {
		return fmt.Errorf("-o is required")
	}
	if chip == "esp8266" {
		img := otatest.ESP8266Image(otatest.ESP8266Options{Version: version, ProjectName: project, IDFVersion: idf, Size: size})
		return os.WriteFile(out, img, 0o644)
	}
	id, ok := ota.ChipID(chip)
	if !ok {
		return fmt.Errorf("unknown chip %q", chip)
	}
	img := otatest.Image(otatest.ImageOptions{ChipID: id, Version: version, ProjectName: project, IDFVersion: idf,
		Size: size, HashAppended: true})
	return os.WriteFile(out, img, 0o644)
}
