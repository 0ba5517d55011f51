// Package ota is ESP Admin's remote software update service: projects and their Ed25519
// signing keys, ESP32 application image validation, releases kept in blob storage, and the
// rollout engine that sends signed update commands to devices, follows their progress and
// advances, pauses or completes staged rollouts.
//
// State lives in the store (projects, releases, rollouts, per-device update states) and the
// binaries in blob storage, so several replicas behave like one: a rollout's stage advances
// through store.RolloutStore.UpdateRollout, a compare-and-set on its Version, and only the
// replica that wins it sends the next stage's commands. docs/ota.md describes the behaviour
// for users.
package ota
