package fleet

import (
	"fmt"

	"github.com/espadmin/espadmin/store"
)

// ESP8266NVSMaxValue is the largest string or blob an NVS image for ESP8266_RTOS_SDK v3.4
// holds: the SDK's nvs_partition_gen.py writes the version 1 format, whose values are at most
// 1,984 bytes (a string counts its terminating NUL).
const ESP8266NVSMaxValue = 1984

// CheckNVSValueSizes refuses (422 on field) a bundle with a value over max bytes in its NVS
// form, naming the key: the partition generator would refuse it when the CSV is turned into
// an image, far from where it can be fixed.
func (b Bundle) CheckNVSValueSizes(max int, field string) error {
	for _, v := range []struct {
		key string
		n   int
	}{
		{NVSDeviceID, len(b.DeviceID) + 1}, {NVSSecret, len(b.Secret) + 1}, {NVSDeviceKey, len(b.DeviceKey) + 1},
		{NVSMQTTHost, len(b.MQTT.Host) + 1}, {NVSMQTTCA, len(b.MQTT.CAPEM)}, {NVSTopicRoot, len(b.MQTT.TopicRoot) + 1},
		{NVSServerURL, len(b.ServerURL) + 1}, {NVSOTAPubKey, len(b.OTAPublicKey) + 1}, {NVSOTACA, len(b.OTACAPEM)},
	} {
		if v.n > max {
			return store.Invalid(field, fmt.Sprintf("%s takes %d bytes in NVS; the ESP8266_RTOS_SDK v3.4 NVS format holds at most %d bytes per value",
				v.key, v.n, max))
		}
	}
	return nil
}
