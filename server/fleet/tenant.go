package fleet

import (
	"context"

	"github.com/espadmin/espadmin/store"
)

// TenantForgetter is a cache that can drop every device of a tenant at once (package
// devauth's cache, through Ingest or the broker).
type TenantForgetter interface {
	ForgetTenant(tenantID string)
}

// DeviceIDs returns the IDs of every device of tenantID; the server lists them before
// deleting the tenant, whose devices are gone from the store afterwards.
func (d *Devices) DeviceIDs(ctx context.Context, tenantID string) ([]string, error) {
	var ids []string
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := d.o.Store.ListDevices(ctx, tenantID, store.DeviceFilter{}, opts)
		if err != nil {
			return nil, err
		}
		for _, dev := range page.Items {
			ids = append(ids, dev.ID)
		}
		if page.NextCursor == "" {
			return ids, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// TenantDeleted acts on a tenant that was just deleted, as Delete does for one device: the
// cached credentials of its devices are dropped at once (by tenant, which also catches a
// device created after deviceIDs was listed) and the live sessions of deviceIDs are closed,
// so none of them stays connected or reconnects on a cached answer.
func (d *Devices) TenantDeleted(tenantID string, deviceIDs []string) {
	if f, ok := d.o.Sessions.(TenantForgetter); ok {
		f.ForgetTenant(tenantID)
	}
	for _, c := range d.o.Caches {
		if f, ok := c.(TenantForgetter); ok {
			f.ForgetTenant(tenantID)
		}
	}
	for _, id := range deviceIDs {
		d.kick(id)
	}
}
