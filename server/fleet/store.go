package fleet

import (
	"context"
	"time"

	"github.com/espadmin/espadmin/store"
)

// Store is the part of the store the fleet services use.
type Store interface {
	store.DeviceStore
	store.CommandStore
	// HistoryStore keeps presence changes, metadata reports and fleet counts over time.
	store.HistoryStore
	// Project gives a linked project's OTA public key for provisioning bundles.
	Project(ctx context.Context, tenantID, id string) (store.Project, error)
	// ListTenants lets the command sweeper visit every tenant.
	ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error)
	// Atomic stores a batch of commands all together or not at all.
	store.Transactor
}

var _ Store = store.Store(nil)

// Clock returns the current time; tests inject their own.
type Clock func() time.Time

func (c Clock) now() time.Time {
	if c == nil {
		return store.Now()
	}
	return store.Timestamp(c())
}
