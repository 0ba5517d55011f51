// Package fleet holds the device-facing services of ESP Admin that are not HTTP: device
// credentials and provisioning bundles (Devices), commands with acknowledgement (Commands),
// ingestion of device reports with presence (Ingest) and the in-process event stream of each
// tenant (Hub).
//
// It talks to devices only through messaging.Bus (and messaging.Sessions where the broker
// offers it), so the same code serves the embedded broker and a tenant's own broker. Every
// state that matters between requests lives in the store; what is kept in memory (the
// device-to-tenant cache, presence debouncing, last-seen batching, event subscribers) is a
// cache or a stream and may be lost at a restart without losing anything the API shows.
//
// # Replicas
//
// With several server replicas the ingestion subscription is a shared subscription
// ($share/GROUP/…) so each report is handled once. Events are published by the replica that
// ingested the report, so a browser connected to another replica does not see them live; it
// sees the new state on its next read. There is no cross-replica event bus: the event
// stream is per replica by design (docs/deployment.md, "Several replicas").
package fleet
