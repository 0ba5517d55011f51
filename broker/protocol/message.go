package protocol

import (
	"fmt"
	"net/netip"
	"strings"
)

// Size limits per payload kind, checked on the raw bytes before any parsing. They follow
// from what an ESP32 can buffer (the esp-mqtt receive buffer must hold a whole command) and
// from what the server is willing to ingest per message.
const (
	MaxCommandSize       = 16 << 10 // every command, config included
	MaxStatusSize        = 256
	MaxMetadataSize      = 2 << 10
	MaxAckSize           = 4 << 10
	MaxOTASize           = 1 << 10
	MaxLogSize           = 8 << 10
	MaxErrorSize         = 16 << 10
	MaxConfigRequestSize = 256
)

// String length limits in bytes (UTF-8), per field family. ESP-IDF's esp_app_desc_t holds
// version, project name and IDF version in char[32], hence 31.
const (
	MaxAppStringLength    = 31   // firmware_version, project, idf_version
	MaxChipModelLength    = 32   // chip_model, e.g. "esp32s3"
	MaxMessageLength      = 256  // ack message, ota message
	MaxReasonLength       = 128  // restart reason
	MaxLogTagLength       = 32   // log tag
	MaxLogMessageLength   = 512  // one log line
	MaxErrorMessageLength = 1024 // error message
	MaxErrorTypeLength    = 64   // error type and code
	MaxFrames             = 64   // backtrace frames
	MaxCoreDumpLength     = 4096 // core dump summary text
	// MaxCoreDumpSize bounds a full core dump a device announces (core_dump.size) and
	// uploads: ESP-IDF's coredump partitions are tens of KiB; 4 MiB leaves room for PSRAM tasks.
	MaxCoreDumpSize = 4 << 20
)

// Log levels, as ESP-IDF's esp_log_level_t names them (ESP_LOG_ERROR … ESP_LOG_VERBOSE).
const (
	LevelError   = "error"
	LevelWarn    = "warn"
	LevelInfo    = "info"
	LevelDebug   = "debug"
	LevelVerbose = "verbose"
)

// LogLevels returns the log levels from the most to the least severe.
func LogLevels() []string {
	return []string{LevelError, LevelWarn, LevelInfo, LevelDebug, LevelVerbose}
}

// ResetReasons returns the reset_reason values: ESP-IDF's esp_reset_reason_t constants
// without the ESP_RST_ prefix, in lower case. A device maps a reason its IDF adds later to
// "unknown".
func ResetReasons() []string {
	return []string{"unknown", "poweron", "ext", "sw", "panic", "int_wdt", "task_wdt", "wdt",
		"deepsleep", "brownout", "sdio", "usb", "jtag", "efuse", "pwr_glitch", "cpu_lockup"}
}

// ValidCommandID reports whether id can be a command ID: the same alphabet and length as a
// device ID (store.NewID makes both).
func ValidCommandID(id string) bool { return ValidDeviceID(id) }

// DecodeUplink decodes the payload of an uplink kind (the last level of the topic, see
// ParseTopic) into Status, Metadata, Ack, OTAProgress, LogBatch, ErrorReport or ConfigRequest.
// It is the single entry point of the ingest workers.
func DecodeUplink(kind string, data []byte) (any, error) {
	switch kind {
	case KindStatus:
		return DecodeStatus(data)
	case KindMetadata:
		return DecodeMetadata(data)
	case KindAck:
		return DecodeAck(data)
	case KindOTA:
		return DecodeOTAProgress(data)
	case KindLog:
		return DecodeLogBatch(data)
	case KindError:
		return DecodeErrorReport(data)
	case KindConfigRequest:
		return DecodeConfigRequest(data)
	}
	return nil, fmt.Errorf("%w: uplink %q", ErrUnknownKind, kind)
}

// EncodeUplink encodes any of the uplink message types and returns its kind with it; the
// simulator and tests use it to publish on Uplink(root, id, kind).
func EncodeUplink(msg any) (kind string, data []byte, err error) {
	switch m := msg.(type) {
	case Status:
		data, err = EncodeStatus(m)
		return KindStatus, data, err
	case Metadata:
		data, err = EncodeMetadata(m)
		return KindMetadata, data, err
	case Ack:
		data, err = EncodeAck(m)
		return KindAck, data, err
	case OTAProgress:
		data, err = EncodeOTAProgress(m)
		return KindOTA, data, err
	case LogBatch:
		data, err = EncodeLogBatch(m)
		return KindLog, data, err
	case ErrorReport:
		data, err = EncodeErrorReport(m)
		return KindError, data, err
	case ConfigRequest:
		data, err = EncodeConfigRequest(m)
		return KindConfigRequest, data, err
	}
	return "", nil, fmt.Errorf("protocol: %T is not an uplink message", msg)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return s != ""
}

// validSHA256 accepts 64 lower-case hex digits.
func validSHA256(s string) bool { return len(s) == 64 && isLowerHex(s) }

// validAddress accepts a code address as "0x" and 1 to 16 lower-case hex digits. Addresses are
// strings because a 64-bit value does not survive a double.
func validAddress(s string) bool {
	h, ok := strings.CutPrefix(s, "0x")
	return ok && len(h) <= 16 && isLowerHex(h)
}

// validMAC accepts aa:bb:cc:dd:ee:ff in lower case (the firmware prints it with %02x).
func validMAC(s string) bool {
	if len(s) != 17 {
		return false
	}
	for i := 0; i < 17; i++ {
		if i%3 == 2 {
			if s[i] != ':' {
				return false
			}
		} else if !isLowerHex(s[i : i+1]) {
			return false
		}
	}
	return true
}

// validIP accepts an IPv4 or IPv6 address without a zone.
func validIP(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Zone() == ""
}
