package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
)

// ErrProjectNotFound is returned when a device is linked to a project that does not exist in
// its tenant; the API reports it as an invalid project_id.
var ErrProjectNotFound = errors.New("fleet: project not found")

// Forgetter drops whatever is cached about a device (the ingest's device-to-tenant cache).
type Forgetter interface {
	Forget(deviceID string)
}

// DevicesOptions are the collaborators of Devices.
type DevicesOptions struct {
	Store   Store
	Keyring *seal.Keyring
	// Sessions kicks live sessions after a rotation, a disable or a delete. Nil when the
	// broker cannot (a tenant's own broker): the old secret is then refused at the next
	// connect, which the external broker's own authentication must enforce.
	Sessions messaging.Sessions
	// Caches are told to forget a device whose credentials or state changed.
	Caches   []Forgetter
	Endpoint Endpoint
	// TenantEndpoint, when set, gives the broker of a tenant whose devices use its own
	// (package tenantbus); false keeps Endpoint's broker. ServerURL always comes from
	// Endpoint.
	TenantEndpoint func(tenantID string) (Endpoint, bool)
	Hub            *Hub
	Logger         *slog.Logger
	Now            Clock
}

// Devices creates devices and manages their credentials. A secret exists in clear text only
// in the answer to Create and Rotate; the store keeps its SHA-256.
type Devices struct {
	o DevicesOptions
}

// NewDevices returns the device service.
func NewDevices(o DevicesOptions) *Devices {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Devices{o: o}
}

// Endpoint returns what bundles say about where devices connect.
func (d *Devices) Endpoint() Endpoint { return d.o.Endpoint }

// EndpointFor returns where a tenant's devices connect: its own broker when it uses one,
// else Endpoint. Firmware downloads always come from this server (ServerURL, OTACAPEM).
func (d *Devices) EndpointFor(tenantID string) Endpoint {
	e := d.Endpoint()
	if d.o.TenantEndpoint != nil {
		if te, ok := d.o.TenantEndpoint(tenantID); ok {
			te.ServerURL = e.ServerURL
			te.OTACAPEM = e.OTACAPEM
			return te
		}
	}
	return e
}

// DeviceInput is what a caller chooses about a device. The server validates names and tags
// at the edge; Devices checks that the project exists in the tenant.
type DeviceInput struct {
	Name      string
	ProjectID string
	Tags      []string
}

// Provisioned is a device together with its secret and bundle, as returned once by Create and
// Rotate.
type Provisioned struct {
	Device store.Device
	Secret string
	Bundle Bundle
}

// Create stores a new device with fresh credentials.
func (d *Devices) Create(ctx context.Context, tenantID string, in DeviceInput) (Provisioned, error) {
	if err := d.checkProject(ctx, tenantID, in.ProjectID); err != nil {
		return Provisioned{}, err
	}
	dev := store.Device{
		ID:        store.NewID(),
		TenantID:  tenantID,
		Name:      in.Name,
		ProjectID: in.ProjectID,
		Tags:      in.Tags,
	}
	secret, key, err := d.credentials(tenantID, &dev)
	if err != nil {
		return Provisioned{}, err
	}
	dev.CredentialsRotatedAt = d.o.Now.now()
	if err := d.o.Store.CreateDevice(ctx, &dev); err != nil {
		return Provisioned{}, err
	}
	b, err := d.bundle(ctx, dev, secret, key)
	if err != nil {
		return Provisioned{}, err
	}
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: tenantID, DeviceID: dev.ID, Data: map[string]any{"action": "created"}})
	return Provisioned{Device: dev, Secret: secret, Bundle: b}, nil
}

// Update saves name, tags and project link.
func (d *Devices) Update(ctx context.Context, dev *store.Device) error {
	if err := d.checkProject(ctx, dev.TenantID, dev.ProjectID); err != nil {
		return err
	}
	if err := d.o.Store.UpdateDevice(ctx, dev); err != nil {
		return err
	}
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: dev.TenantID, DeviceID: dev.ID, Data: map[string]any{"action": "updated"}})
	return nil
}

// Rotate gives the device a new secret and a new per-device key, and kicks its live session
// at once: the device must reconnect with the new secret, which the old session cannot know.
func (d *Devices) Rotate(ctx context.Context, tenantID, id string) (Provisioned, error) {
	dev, err := d.o.Store.Device(ctx, tenantID, id)
	if err != nil {
		return Provisioned{}, err
	}
	secret, key, err := d.credentials(tenantID, &dev)
	if err != nil {
		return Provisioned{}, err
	}
	at := d.o.Now.now()
	if err := d.o.Store.SetDeviceCredentials(ctx, tenantID, id, dev.SecretHash, dev.KeySealed, at); err != nil {
		return Provisioned{}, err
	}
	dev.CredentialsRotatedAt = at
	d.kick(id)
	b, err := d.bundle(ctx, dev, secret, key)
	if err != nil {
		return Provisioned{}, err
	}
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: tenantID, DeviceID: id, Data: map[string]any{"action": "credentials_rotated"}})
	return Provisioned{Device: dev, Secret: secret, Bundle: b}, nil
}

// SwitchSecret makes secret the device's MQTT password and keeps its per-device key: the
// end of a staged rotation, once the device holds the new secret (package devconfig). The
// old secret is refused from now on; the live session is closed so the device reconnects
// with the new one.
func (d *Devices) SwitchSecret(ctx context.Context, tenantID, id, secret string) error {
	dev, err := d.o.Store.Device(ctx, tenantID, id)
	if err != nil {
		return err
	}
	at := d.o.Now.now()
	if err := d.o.Store.SetDeviceCredentials(ctx, tenantID, id, HashSecret(secret), dev.KeySealed, at); err != nil {
		return err
	}
	d.kick(id)
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: tenantID, DeviceID: id, Data: map[string]any{"action": "credentials_rotated", "mode": "staged"}})
	return nil
}

// SetDisabled disables or enables a device. Disabling kicks the live session; the broker
// refuses the device until it is enabled again.
func (d *Devices) SetDisabled(ctx context.Context, tenantID, id string, disabled bool) (store.Device, error) {
	dev, err := d.o.Store.Device(ctx, tenantID, id)
	if err != nil {
		return store.Device{}, err
	}
	dev.Disabled = disabled
	if err := d.o.Store.UpdateDevice(ctx, &dev); err != nil {
		return store.Device{}, err
	}
	d.kickIf(id, disabled)
	action := "enabled"
	if disabled {
		action = "disabled"
	}
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: tenantID, DeviceID: id, Data: map[string]any{"action": action}})
	return dev, nil
}

// Delete removes the device and kicks its session.
func (d *Devices) Delete(ctx context.Context, tenantID, id string) error {
	if err := d.o.Store.DeleteDevice(ctx, tenantID, id); err != nil {
		return err
	}
	d.kick(id)
	d.o.Hub.Publish(Event{Type: EventDevice, TenantID: tenantID, DeviceID: id, Data: map[string]any{"action": "deleted"}})
	return nil
}

// Bundle returns the provisioning bundle of a stored device without its secret, which only
// exists at creation and rotation (the store keeps a hash).
func (d *Devices) Bundle(ctx context.Context, dev store.Device) (Bundle, error) {
	key, err := d.DeviceKey(dev)
	if err != nil {
		return Bundle{}, err
	}
	return d.bundle(ctx, dev, "", key)
}

// DeviceKey opens the device's per-device key.
func (d *Devices) DeviceKey(dev store.Device) ([]byte, error) {
	key, err := d.o.Keyring.Open(dev.KeySealed, DeviceKeyAD(dev.TenantID, dev.ID))
	if err != nil {
		return nil, fmt.Errorf("fleet: open key of device %q: %w", dev.ID, err)
	}
	return key, nil
}

// credentials draws a secret and a key and stores their hash and sealed form in dev.
func (d *Devices) credentials(tenantID string, dev *store.Device) (secret string, key []byte, err error) {
	if secret, err = NewSecret(); err != nil {
		return "", nil, err
	}
	if key, err = newDeviceKey(); err != nil {
		return "", nil, err
	}
	sealed, err := d.o.Keyring.Seal(key, DeviceKeyAD(tenantID, dev.ID))
	if err != nil {
		return "", nil, fmt.Errorf("fleet: seal device key: %w", err)
	}
	dev.SecretHash, dev.KeySealed = HashSecret(secret), sealed
	return secret, key, nil
}

func (d *Devices) checkProject(ctx context.Context, tenantID, projectID string) error {
	if projectID == "" {
		return nil
	}
	_, err := d.o.Store.Project(ctx, tenantID, projectID)
	if errors.Is(err, store.ErrNotFound) {
		return ErrProjectNotFound
	}
	return err
}

func (d *Devices) kickIf(id string, kick bool) {
	if kick {
		d.kick(id)
		return
	}
	d.forget(id)
}

// kick forgets cached credentials first, so the reconnect that follows the disconnect is
// checked against the store.
func (d *Devices) kick(id string) {
	d.forget(id)
	if d.o.Sessions == nil {
		return
	}
	if err := d.o.Sessions.Disconnect(id); err != nil {
		d.o.Logger.Warn("disconnect device session", "device_id", id, "error", err)
	}
}

func (d *Devices) forget(id string) {
	if d.o.Sessions != nil {
		d.o.Sessions.Forget(id)
	}
	for _, c := range d.o.Caches {
		c.Forget(id)
	}
}
