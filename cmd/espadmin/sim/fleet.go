package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/fleet"
)

// Fleet runs many simulated devices.
type Fleet struct {
	devices []*Device
}

// NewFleet makes one device per bundle; base gives the options every device shares (its
// Bundle is replaced).
func NewFleet(bundles []fleet.Bundle, base Options) (*Fleet, error) {
	f := &Fleet{}
	for _, b := range bundles {
		o := base
		o.Bundle = b
		d, err := NewDevice(o)
		if err != nil {
			return nil, err
		}
		f.devices = append(f.devices, d)
	}
	return f, nil
}

// Devices returns the fleet's devices.
func (f *Fleet) Devices() []*Device { return f.devices }

// Start starts every device, at most rate per second (0: all at once), so a large fleet
// does not look like an attack.
func (f *Fleet) Start(ctx context.Context, rate int) {
	var tick <-chan time.Time
	if rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		tick = t.C
	}
	for _, d := range f.devices {
		if tick != nil {
			select {
			case <-ctx.Done():
				return
			case <-tick:
			}
		}
		d.Start(ctx)
	}
}

// Stop stops every device.
func (f *Fleet) Stop() {
	var wg sync.WaitGroup
	for _, d := range f.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.Stop()
		}()
	}
	wg.Wait()
}

// Connected counts the devices holding a connection.
func (f *Fleet) Connected() int {
	n := 0
	for _, d := range f.devices {
		if d.Connected() {
			n++
		}
	}
	return n
}

// Totals adds up the devices' counters.
func (f *Fleet) Totals() Stats {
	var t Stats
	for _, d := range f.devices {
		s := d.Stats()
		t.Connects += s.Connects
		t.Refused += s.Refused
		t.Commands += s.Commands
		t.Duplicates += s.Duplicates
		t.Acks += s.Acks
		t.LogBatches += s.LogBatches
		t.LogLines += s.LogLines
		t.Restarts += s.Restarts
		t.OTAFailures += s.OTAFailures
	}
	return t
}

// ReadBundle reads a provisioning bundle from a JSON file or an NVS CSV file (by extension).
func ReadBundle(path string) (fleet.Bundle, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fleet.Bundle{}, err
	}
	if strings.EqualFold(filepath.Ext(path), ".csv") {
		return fleet.ParseNVSCSV(data)
	}
	var b fleet.Bundle
	if err := json.Unmarshal(data, &b); err != nil {
		return fleet.Bundle{}, fmt.Errorf("sim: %s: %w", path, err)
	}
	if b.V != fleet.BundleVersion {
		return fleet.Bundle{}, fmt.Errorf("sim: %s: bundle version %d, want %d", path, b.V, fleet.BundleVersion)
	}
	return b, nil
}

// ReadBundlesDir reads every *.json and *.csv bundle in dir, in name order.
func ReadBundlesDir(dir string) ([]fleet.Bundle, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && (ext == ".json" || ext == ".csv") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	out := make([]fleet.Bundle, 0, len(names))
	for _, n := range names {
		b, err := ReadBundle(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// WriteBundle saves a bundle (it holds the device's secret and key: mode 0600).
func WriteBundle(dir string, b fleet.Bundle) error {
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, b.DeviceID+".json"), data, 0o600)
}

// API creates devices through the REST API with a token.
type API struct {
	URL    string // server base URL, e.g. http://localhost:8080
	Token  string // API token with devices:write
	Tenant string // tenant slug
	Client *http.Client
}

// CreateRequest is what Create sends for each device.
type CreateRequest struct {
	Name      string   `json:"name"`
	ProjectID string   `json:"project_id,omitempty"`
	Tags      []string `json:"tags,omitempty"`
}

// Create creates one device and returns its bundle, secret included.
func (a API) Create(ctx context.Context, req CreateRequest) (fleet.Bundle, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return fleet.Bundle{}, err
	}
	u := strings.TrimRight(a.URL, "/") + "/api/v1/tenants/" + a.Tenant + "/devices"
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fleet.Bundle{}, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Authorization", "Bearer "+a.Token)
	c := a.Client
	if c == nil {
		c = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := c.Do(r)
	if err != nil {
		return fleet.Bundle{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fleet.Bundle{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return fleet.Bundle{}, fmt.Errorf("sim: create device: %s: %s", resp.Status, bytes.TrimSpace(raw))
	}
	var out struct {
		ID           string       `json:"id"`
		Secret       string       `json:"secret"`
		Provisioning fleet.Bundle `json:"provisioning"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fleet.Bundle{}, fmt.Errorf("sim: create device: %w", err)
	}
	if out.ID == "" || out.Secret == "" || out.Provisioning.DeviceID != out.ID {
		return fleet.Bundle{}, errors.New("sim: create device: answer without id, secret or provisioning bundle")
	}
	return out.Provisioning, nil
}

// EnsureDevices returns count bundles from stateDir, creating the missing devices through
// the API and saving their bundles there, so a second run reuses the same devices.
func EnsureDevices(ctx context.Context, a API, stateDir string, count int, namePrefix, projectID string, tags []string) ([]fleet.Bundle, error) {
	var have []fleet.Bundle
	if _, err := os.Stat(stateDir); err == nil {
		if have, err = ReadBundlesDir(stateDir); err != nil {
			return nil, err
		}
	}
	for i := len(have); i < count; i++ {
		b, err := a.Create(ctx, CreateRequest{Name: fmt.Sprintf("%s-%04d", namePrefix, i+1), ProjectID: projectID, Tags: tags})
		if err != nil {
			return nil, err
		}
		if err := WriteBundle(stateDir, b); err != nil {
			return nil, err
		}
		have = append(have, b)
	}
	if len(have) > count {
		have = have[:count]
	}
	for _, b := range have {
		if !protocol.ValidDeviceID(b.DeviceID) {
			return nil, fmt.Errorf("sim: bundle with invalid device ID %q in %s", b.DeviceID, stateDir)
		}
	}
	return have, nil
}
