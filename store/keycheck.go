package store

import (
	"context"
	"time"
)

// KeyCheck proves which master key a database's secrets are sealed with: the key's ID and a
// known value sealed with it (package seal makes and opens it). It is written once, by the
// first start on an empty database (or the first start of a version that has it), and never
// changed by the server.
type KeyCheck struct {
	// Name is the key's purpose; the server keeps one, "master".
	Name string
	// KeyID is the ID of the key that sealed Sealed, as seal.KeyID prints it.
	KeyID string
	// Sealed is the known value sealed with the key.
	Sealed    []byte
	CreatedAt time.Time
}

// KeyCheckStore keeps the key checks. They belong to the installation, not to a tenant.
type KeyCheckStore interface {
	// KeyCheck returns the check named name, or ErrNotFound when none was written.
	KeyCheck(ctx context.Context, name string) (KeyCheck, error)
	// CreateKeyCheck writes a check; ErrConflict when one of that name exists already (two
	// servers starting at once: the caller reads the winner's and checks its key against it).
	CreateKeyCheck(ctx context.Context, c *KeyCheck) error
}
