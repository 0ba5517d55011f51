package fleet

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/espadmin/espadmin/store"
)

// BundleVersion is the version of the provisioning bundle layout (field "v").
const BundleVersion = 1

// Endpoint is where devices reach the server, as written into provisioning bundles.
type Endpoint struct {
	// Root is the MQTT topic root (docs/protocol.md §1).
	Root string
	// MQTTHost and MQTTPort are the broker address devices dial.
	MQTTHost string
	MQTTPort int
	// TLS tells devices to use TLS; CAPEM is the CA certificate (PEM) they verify the broker
	// with, empty to use the device's built-in bundle.
	TLS   bool
	CAPEM string
	// ServerURL is the public HTTP base URL (firmware downloads).
	ServerURL string
	// OTACAPEM is the CA certificate (PEM) devices verify every firmware download with, empty
	// when they use their built-in bundle (or, for URLs under ServerURL, the broker's CA).
	OTACAPEM string
}

// Bundle is the provisioning bundle a device is flashed with. The firmware reads exactly this
// JSON (see docs/provisioning.md). Secret is empty except in the answers to device creation
// and credential rotation: the server keeps only its hash.
type Bundle struct {
	V            int        `json:"v"`
	DeviceID     string     `json:"device_id"`
	Secret       string     `json:"secret"`
	DeviceKey    string     `json:"device_key"` // base64 (standard) of 32 bytes
	MQTT         BundleMQTT `json:"mqtt"`
	ServerURL    string     `json:"server_url"`
	OTAPublicKey string     `json:"ota_public_key"` // base64 Ed25519 public key, "" when signing is off
	// OTACAPEM is the CA (PEM) to verify firmware downloads with (ota.download_ca_file); ""
	// means: for a URL under ServerURL the broker's CA, else the firmware's CA bundle.
	OTACAPEM string `json:"ota_ca_pem"`
}

// LoopbackWarnings says which addresses of the endpoint only reach the server's own
// machine (localhost, 127.0.0.1, ::1, 0.0.0.0): a device flashed with such a bundle dials
// itself. Empty when both addresses are reachable names.
func (e Endpoint) LoopbackWarnings() []string {
	var out []string
	if loopbackHost(e.MQTTHost) {
		out = append(out, fmt.Sprintf("the broker host in provisioning bundles is %q, which devices cannot reach: set --mqtt-public-host (ESPADMIN_MQTT_PUBLIC_HOST) or --public-url to this server's address on the devices' network", e.MQTTHost))
	}
	if u, err := url.Parse(e.ServerURL); err == nil && loopbackHost(u.Hostname()) {
		out = append(out, fmt.Sprintf("the server URL in provisioning bundles (firmware downloads) is %q, which devices cannot reach: set --public-url (ESPADMIN_PUBLIC_URL) to this server's address on the devices' network", e.ServerURL))
	}
	return out
}

// LoopbackWarnings is Endpoint.LoopbackWarnings for the addresses this bundle carries.
func (b Bundle) LoopbackWarnings() []string {
	return Endpoint{MQTTHost: b.MQTT.Host, ServerURL: b.ServerURL}.LoopbackWarnings()
}

// loopbackHost reports whether host names this machine only.
func loopbackHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// BundleMQTT is the broker part of a bundle.
type BundleMQTT struct {
	Host      string `json:"host"`
	Port      int    `json:"port"`
	TLS       bool   `json:"tls"`
	CAPEM     string `json:"ca_pem"`
	TopicRoot string `json:"topic_root"`
}

// NVS namespace and keys of the CSV form; keys are at most 15 characters (NVS limit).
const (
	NVSNamespace = "espadmin"
	NVSDeviceID  = "device_id"
	NVSSecret    = "secret"
	NVSDeviceKey = "device_key"
	NVSMQTTHost  = "mqtt_host"
	NVSMQTTPort  = "mqtt_port"
	NVSMQTTTLS   = "mqtt_tls"
	NVSMQTTCA    = "mqtt_ca"
	NVSTopicRoot = "topic_root"
	NVSServerURL = "server_url"
	NVSOTAPubKey = "ota_pubkey"
	NVSOTACA     = "ota_ca"
)

func (d *Devices) bundle(ctx context.Context, dev store.Device, secret string, key []byte) (Bundle, error) {
	e := d.EndpointFor(dev.TenantID)
	b := Bundle{
		V:         BundleVersion,
		DeviceID:  dev.ID,
		Secret:    secret,
		DeviceKey: base64.StdEncoding.EncodeToString(key),
		MQTT: BundleMQTT{
			Host: e.MQTTHost, Port: e.MQTTPort, TLS: e.TLS, CAPEM: e.CAPEM, TopicRoot: e.Root,
		},
		ServerURL: e.ServerURL,
		OTACAPEM:  e.OTACAPEM,
	}
	if dev.ProjectID != "" {
		p, err := d.o.Store.Project(ctx, dev.TenantID, dev.ProjectID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return Bundle{}, err
		}
		if err == nil && p.SigningEnabled && len(p.SigningPublicKey) > 0 {
			b.OTAPublicKey = base64.StdEncoding.EncodeToString(p.SigningPublicKey)
		}
	}
	return b, nil
}

// NVSCSV renders the bundle as an ESP-IDF NVS partition CSV for nvs_partition_gen.py
// (header key,type,encoding,value; one namespace line; then the entries). Values are
// CSV-quoted where needed. The CA certificates, which are multi-line PEM, are written with the
// base64 encoding: nvs_partition_gen.py decodes it and stores the exact PEM bytes as a blob
// (read it with nvs_get_blob), so no newline ever sits inside a CSV field. Entries whose
// value is empty (no secret outside creation and rotation, no CA, no OTA key, no download CA)
// are left out;
// the firmware treats an absent key as empty.
func (b Bundle) NVSCSV() ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	rows := [][]string{
		{"key", "type", "encoding", "value"},
		{NVSNamespace, "namespace", "", ""},
	}
	str := func(k, v string) {
		if v != "" {
			rows = append(rows, []string{k, "data", "string", v})
		}
	}
	str(NVSDeviceID, b.DeviceID)
	str(NVSSecret, b.Secret)
	str(NVSDeviceKey, b.DeviceKey)
	str(NVSMQTTHost, b.MQTT.Host)
	rows = append(rows, []string{NVSMQTTPort, "data", "u16", strconv.Itoa(b.MQTT.Port)})
	tls := "0"
	if b.MQTT.TLS {
		tls = "1"
	}
	rows = append(rows, []string{NVSMQTTTLS, "data", "u8", tls})
	if b.MQTT.CAPEM != "" {
		rows = append(rows, []string{NVSMQTTCA, "data", "base64", base64.StdEncoding.EncodeToString([]byte(b.MQTT.CAPEM))})
	}
	str(NVSTopicRoot, b.MQTT.TopicRoot)
	str(NVSServerURL, b.ServerURL)
	str(NVSOTAPubKey, b.OTAPublicKey)
	if b.OTACAPEM != "" {
		rows = append(rows, []string{NVSOTACA, "data", "base64", base64.StdEncoding.EncodeToString([]byte(b.OTACAPEM))})
	}
	if err := w.WriteAll(rows); err != nil {
		return nil, fmt.Errorf("fleet: write NVS CSV: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseNVSCSV reads back a CSV written by NVSCSV into a bundle (the simulator and tests use
// it; the firmware reads the flashed NVS partition instead).
func ParseNVSCSV(data []byte) (Bundle, error) {
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return Bundle{}, fmt.Errorf("fleet: read NVS CSV: %w", err)
	}
	if len(rows) < 2 || fmt.Sprint(rows[0]) != "[key type encoding value]" || rows[1][0] != NVSNamespace || rows[1][1] != "namespace" {
		return Bundle{}, errors.New("fleet: NVS CSV: missing header or namespace line")
	}
	b := Bundle{V: BundleVersion}
	for _, r := range rows[2:] {
		if len(r) != 4 || r[1] != "data" {
			return Bundle{}, fmt.Errorf("fleet: NVS CSV: unexpected row %q", r)
		}
		k, enc, v := r[0], r[2], r[3]
		switch k {
		case NVSDeviceID:
			b.DeviceID = v
		case NVSSecret:
			b.Secret = v
		case NVSDeviceKey:
			b.DeviceKey = v
		case NVSMQTTHost:
			b.MQTT.Host = v
		case NVSMQTTPort:
			if b.MQTT.Port, err = strconv.Atoi(v); err != nil || enc != "u16" {
				return Bundle{}, fmt.Errorf("fleet: NVS CSV: bad %s", k)
			}
		case NVSMQTTTLS:
			b.MQTT.TLS = v == "1"
		case NVSMQTTCA:
			pem, err := base64.StdEncoding.DecodeString(v)
			if err != nil || enc != "base64" {
				return Bundle{}, fmt.Errorf("fleet: NVS CSV: bad %s", k)
			}
			b.MQTT.CAPEM = string(pem)
		case NVSTopicRoot:
			b.MQTT.TopicRoot = v
		case NVSServerURL:
			b.ServerURL = v
		case NVSOTAPubKey:
			b.OTAPublicKey = v
		case NVSOTACA:
			pem, err := base64.StdEncoding.DecodeString(v)
			if err != nil || enc != "base64" {
				return Bundle{}, fmt.Errorf("fleet: NVS CSV: bad %s", k)
			}
			b.OTACAPEM = string(pem)
		default:
			return Bundle{}, fmt.Errorf("fleet: NVS CSV: unknown key %q", k)
		}
	}
	return b, nil
}
