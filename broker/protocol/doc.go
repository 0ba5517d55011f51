// Package protocol is the device protocol of ESP Admin: the MQTT topic scheme, the access rules
// a device is confined by, and the JSON payloads exchanged between the server and an ESP32.
//
// It is a leaf package (standard library only) so that the embedded broker, the bridge to a
// tenant's own broker, the server and the fleet simulator all share one definition. The
// normative text is docs/protocol.md; the JSON test vectors in testdata/vectors are loaded by
// this package's tests and by the firmware's C tests, so both sides decode the same bytes the
// same way.
//
// Decoding is strict on what the server relies on (IDs, enums, ranges, types) and lenient on
// what it does not: unknown fields are ignored, and null is the same as an absent field. Every
// decoder checks the payload size before parsing, refuses duplicate keys, nesting deeper than
// MaxDepth, invalid UTF-8 and unpaired surrogate escapes (so a C parser and Go never read
// different values from one payload), and reports failures as one of the error classes in
// errors.go.
package protocol

// Version is the protocol version this package speaks and the highest one it accepts. Every
// payload carries it in its "v" field; a payload with a higher "v" is refused with
// ErrUnsupportedVersion rather than half understood.
const Version = 1
