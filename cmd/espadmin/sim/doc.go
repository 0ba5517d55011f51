// Package sim simulates ESP32 devices that speak the ESP Admin device protocol
// (docs/protocol.md) exactly as the firmware does: one MQTT connection per device with the
// offline status as its last will, the online status, metadata and config request at every
// boot, acknowledgements for every command (with the duplicate and expiry rules), live log
// batches while debug is on, config application with end-to-end secret decryption, and OTA
// downloads checked for size, SHA-256 and the Ed25519 signature.
//
// Device is one simulated device; Fleet runs many. `espadmin sim` is the command-line front
// end, and the server's scenario tests and the benchmarks use the library directly.
package sim
