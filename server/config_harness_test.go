package server

import (
	"crypto/sha256"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/espadmin/espadmin/server/devconfig"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/logbuf"
)

// startConfig builds the config service of a harness fleet: it sends through the fleet's
// commands, observes their acks, switches credentials through its devices and answers the
// ingest's boot refreshes. It is called between the devices and the ingest of startFleet.
func (h *harness) startConfig(st store.Store, fl *testFleet) *devconfig.Service {
	fl.configLogs = &logbuf.Buffer{}
	fp := sha256.Sum256([]byte("espadmin test config fingerprint"))
	svc := devconfig.New(devconfig.Options{
		Store: st, Keyring: h.keyring, FingerprintKey: fp[:], Commands: fl.commands, Hub: fl.hub,
		Endpoint: fl.devices.Endpoint, Credentials: fl.devices,
		Logger: slog.New(slog.NewJSONHandler(fl.configLogs, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: fl.clock.Now,
	})
	fl.commands.Observe(svc)
	return svc
}

// populateConfig gives a tenant of the world a project linked to deviceID, and the entry
// "interval" at version 1 in both the project and the device.
func (w *tenantWorld) populateConfig(t *testing.T, tenantID, deviceID string) (projectID, key string) {
	t.Helper()
	ctx := t.Context()
	p := store.Project{TenantID: tenantID, Name: "config-" + tenantID, VersionMismatch: store.MismatchWarn}
	if err := w.h.st.CreateProject(ctx, &p); err != nil {
		t.Fatal(err)
	}
	dev, err := w.h.st.Device(ctx, tenantID, deviceID)
	if err != nil {
		t.Fatal(err)
	}
	dev.ProjectID = p.ID
	if err := w.h.st.UpdateDevice(ctx, &dev); err != nil {
		t.Fatal(err)
	}
	svc := w.h.fleet.config
	for _, sc := range []struct {
		scope store.ConfigScope
		id    string
	}{{store.ScopeProject, p.ID}, {store.ScopeDevice, deviceID}} {
		in := devconfig.Input{Key: "interval", Type: store.TypeInt, Value: json.RawMessage("10")}
		if _, err := svc.Put(ctx, tenantID, sc.scope, sc.id, []devconfig.Input{in}, "seed"); err != nil {
			t.Fatal(err)
		}
	}
	return p.ID, "interval"
}
