package fleet

import (
	"errors"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/store"
)

// A CA certificate over the ESP8266 NVS format's 1,984 bytes is refused, naming the key; one
// of ISRG Root X1's size (1,939 bytes) passes.
func TestCheckNVSValueSizes(t *testing.T) {
	b := Bundle{DeviceID: "d1", MQTT: BundleMQTT{Host: "mqtt.example.com", CAPEM: strings.Repeat("A", 1939)}}
	if err := b.CheckNVSValueSizes(ESP8266NVSMaxValue, "target"); err != nil {
		t.Errorf("1,939-byte CA: %v", err)
	}
	b.OTACAPEM = strings.Repeat("B", 1985)
	err := b.CheckNVSValueSizes(ESP8266NVSMaxValue, "target")
	var inv *store.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(inv.Fields["target"], "ota_ca takes 1985 bytes") {
		t.Errorf("1,985-byte download CA: %v", err)
	}
}
