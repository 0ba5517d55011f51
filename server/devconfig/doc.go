// Package devconfig is the remote configuration service: typed key-value entries at project
// level ("project variables") and device level ("custom properties"), merged with the keys
// the platform manages into each device's effective config, versioned, delivered with the
// `config` command and acknowledged by the device.
//
// # Layers
//
// A device's effective config is, key by key, the last of: the entries of its project, its
// own entries, and the platform-managed keys (protocol.KeyMQTTHost, …), which start with "_"
// and which users cannot write. Each effective entry remembers the layer it came from.
//
// # Versions
//
// Every change that alters a device's effective content creates a new ConfigVersion: a
// snapshot (secret values still sealed with the master key) with a SHA-256 over the canonical
// content. Versions are numbered per device; two writers racing for the same number learn it
// from the store's ErrConflict and the loser recomputes. A change that leaves the content as
// it was (the same value written again) creates no version.
//
// # Secrets
//
// A secret entry's value is sealed at rest with the master key (seal.Keyring), bound to its
// tenant, scope and key. It is opened only to be sealed again for one device with that
// device's key (protocol.SealSecret), right before a config command is built, so neither the
// store, nor a broker, nor the API, nor the audit log, nor a log line ever holds it in clear
// text. The content hash covers a secret through an HMAC of its value under a key derived
// from the master key, so equal secrets hash equally without the hash revealing them.
//
// # Delivery
//
// Each new version is sent as a `config` command through fleet.Commands (stored, published
// when the device is online, redelivered on reconnect until it expires). A device that missed
// it asks at boot (config_req); ConfigRequest answers with the current version unless a
// pending command already carries it. The device's ack moves the sync state from pending to
// in_sync or failed (CommandAcked).
package devconfig
