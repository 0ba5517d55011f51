// Package logrelay streams a device's live log lines to the browsers watching it.
//
// Log lines are never stored. The relay subscribes on the messaging Bus to one device's log
// uplink ({root}/{id}/up/log) for as long as this process has viewers of that device, and
// fans each batch out to the viewers' bounded buffers. Because the subscription is per
// device and made by the process that holds the browser's socket, it does not matter which
// replica's ingestion handled the batch: ingestion's own LogSink call (Relay.Logs) is only
// counted, never relayed, so no line is delivered twice.
//
// The first viewer of a device turns debug on (through the command path, so the command is
// stored, acknowledged and visible like any other) and the last one leaving turns it off.
// The device stops by itself after duration_s (docs/protocol.md §4.2); while viewers remain,
// the relay sends debug on again shortly before that deadline. The relay also watches the
// device's command topic, so viewers learn when debug is switched off or on by anyone (a
// user through the commands API, or another replica whose last viewer left).
//
// A viewer that reads too slowly loses lines, never the others or ingestion: Publish into a
// full buffer drops and counts, and the viewer receives a "dropped" frame with the count
// before its next frame.
package logrelay
