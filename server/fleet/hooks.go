package fleet

import (
	"context"

	"github.com/espadmin/espadmin/broker/protocol"
)

// DeviceRef names the device a report came from, with the tenant ingestion resolved for it.
type DeviceRef struct {
	TenantID string
	DeviceID string
}

// The interfaces below are where the services of later features plug into ingestion. Each is
// optional: when it is nil, ingestion still validates the report, counts it in
// espadmin_ingest_unhandled_total{kind} and drops it, because nothing in this process
// consumes it yet. That is the complete behaviour without those services, not a placeholder:
// the protocol lets a device send these reports to any server.

// ConfigRequester answers a device's boot refresh (config_req) with a config command when
// the device's config is stale (the config service). Ingestion has already re-published the
// device's pending commands when it is called.
type ConfigRequester interface {
	ConfigRequest(ctx context.Context, dev DeviceRef, req protocol.ConfigRequest) error
}

// OTAReporter receives update progress (the OTA rollout service).
type OTAReporter interface {
	OTAProgress(ctx context.Context, dev DeviceRef, p protocol.OTAProgress) error
}

// LogSink receives log batches while debug is on (the live log relay). It must not block: it
// runs on an ingest worker.
type LogSink interface {
	Logs(dev DeviceRef, b protocol.LogBatch)
}

// ErrorReporter receives error and crash reports (the error reporting service).
type ErrorReporter interface {
	ErrorReport(ctx context.Context, dev DeviceRef, r protocol.ErrorReport) error
}
