// Package store holds ESP Admin's domain types and the interface every database backend
// implements. Backends live in sub-packages (sqlstore for SQLite, PostgreSQL and MariaDB through
// bun; mongostore for MongoDB) and all pass the conformance suite in storetest.
//
// Tenant scoping is structural: every method that reads or writes tenant-owned data takes the
// tenant ID, and a record of tenant A looked up under tenant B is ErrNotFound. The only lookups
// without a tenant are the entry points that establish who is calling (a session or token hash,
// a device ID presented to the broker); they return the owning tenant so the caller can scope
// every later call.
//
// Conventions every backend follows (and storetest checks): Create methods assign the ID and
// times when empty and write back what they stored; a read, update or delete of one missing
// record returns ErrNotFound (bulk deletes that match nothing return nil); unique violations
// return ErrConflict; times come back in UTC at millisecond precision.
package store

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"sync"
	"time"
)

// Sentinel errors. Backends wrap them with context; callers test with errors.Is.
var (
	// ErrNotFound means the record does not exist, or belongs to another tenant.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a unique constraint was violated or an optimistic version check failed.
	ErrConflict = errors.New("conflict")
	// ErrSchemaTooNew means the database was migrated by a newer binary; running against it
	// could corrupt data this binary does not understand.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrUnavailable means the database could not be reached or did not answer in time (a
	// refused or lost connection, a timeout, a server shutting down). The request may succeed
	// when retried later; the API answers 503 with Retry-After. Backends wrap it around the
	// driver's error, which stays in the chain.
	ErrUnavailable = errors.New("database unavailable")
	// ErrInvalidBatch means a batch write mixes records that the store cannot write as one
	// unit (config entries of several scopes); it is a programming error, not bad input.
	ErrInvalidBatch = errors.New("invalid batch")
)

// Store is everything the server needs from a database. It is composed of one small interface
// per aggregate so a consumer can declare just the part it uses.
type Store interface {
	TenantStore
	UserStore
	MembershipStore
	IdentityStore
	SessionStore
	LoginLimitStore
	APITokenStore
	InvitationStore
	OneTimeTokenStore
	ProjectStore
	ReleaseStore
	DeviceStore
	ConfigStore
	CommandStore
	RolloutStore
	ErrorReportStore
	AuditStore
	SettingsStore
	KeyCheckStore
	HistoryStore
	AlertStore
	Transactor

	// Backend names the backend ("sqlite", "postgres", "mysql", "mongodb") for logs and tests.
	Backend() string
	// Ping checks that the database answers; /readyz uses it.
	Ping(ctx context.Context) error
	// Migrate applies every pending migration and returns the resulting schema version. It
	// returns ErrSchemaTooNew when the database is ahead of this binary.
	Migrate(ctx context.Context) (int, error)
	// SchemaVersion reports the applied schema version (0 for an empty database).
	SchemaVersion(ctx context.Context) (int, error)
	// Close releases the connections.
	Close() error
}

// Transactor runs several store calls as one unit.
type Transactor interface {
	// Atomic runs fn with a Store bound to one transaction: the writes fn makes through tx
	// are applied together when fn returns nil, and none of them is applied when fn returns
	// an error or panics (the panic goes on after the rollback). Readers outside the
	// transaction see all of its writes or none of them.
	//
	// Inside fn, use only tx, and only from fn's goroutine. On SQLite the transaction holds
	// the database's one writer connection, so a write through the outer Store would wait
	// for fn forever. Keep fn short and free of network calls other than the store's: publish
	// to devices or emit events after Atomic returned.
	//
	// Calling tx.Atomic inside fn joins the transaction that is already open; it is not a
	// savepoint. Its writes are applied only when the outermost fn succeeds, and an error
	// from the inner call must be returned by the outer fn too: after a failed statement the
	// transaction may be unusable (PostgreSQL refuses every later statement), so the whole
	// unit rolls back.
	//
	// fn may run more than once on MongoDB, which retries a transaction that failed with a
	// transient error, so fn must not have effects outside tx. Where a MongoDB deployment
	// cannot run multi-document transactions (a standalone server; FerretDB, see package
	// mongostore) Atomic runs fn without one: each write is still atomic on its own, and
	// the operations the Store promises to be atomic (PutConfigEntries, for example) are
	// stored as one document, but fn's writes taken together are not.
	Atomic(ctx context.Context, fn func(tx Store) error) error
}

// DefaultPageSize and MaxPageSize bound list queries so a request can never ask for the whole
// table.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// ListOptions selects one page of a list ordered by ID. IDs are time-ordered (see NewID), so ID
// order is creation order and stays stable while records are added.
type ListOptions struct {
	// Limit is the page size; 0 means DefaultPageSize, larger than MaxPageSize is capped.
	Limit int
	// Cursor is the NextCursor of the previous page; empty starts at the beginning.
	Cursor string
	// Desc lists newest first.
	Desc bool
}

// PageSize returns the effective limit.
func (o ListOptions) PageSize() int {
	switch {
	case o.Limit <= 0:
		return DefaultPageSize
	case o.Limit > MaxPageSize:
		return MaxPageSize
	}
	return o.Limit
}

// Page is one page of a list. NextCursor is empty on the last page.
type Page[T any] struct {
	Items      []T
	NextCursor string
}

// MakePage trims items fetched with limit+1 rows to limit and sets the cursor to the last ID
// kept when there is more. Backends fetch one row more than asked to know whether a next page
// exists without a second query.
func MakePage[T any](items []T, limit int, id func(T) string) Page[T] {
	if len(items) > limit {
		items = items[:limit]
		return Page[T]{Items: items, NextCursor: id(items[len(items)-1])}
	}
	if items == nil {
		items = []T{}
	}
	return Page[T]{Items: items}
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new 26-character identifier: 48 bits of millisecond time followed by 80
// random bits, in lower-case Crockford base32. IDs sort by creation time, which gives cursor
// pagination a stable order, and contain none of the characters MQTT gives meaning to
// (/ + # $), so device IDs can be used as topic levels and client IDs.
//
// Within one process IDs strictly increase, even within a millisecond: the random part of the
// previous ID is incremented instead of drawn again. (Across replicas, order is by
// millisecond only.)
func NewID() string { return defaultIDs.next(time.Now()) }

// defaultIDs is the process-wide generator. It is the package's only mutable state, and only
// because monotonic IDs need to remember the previous one.
var defaultIDs idGenerator

type idGenerator struct {
	mu   sync.Mutex
	last [16]byte
	ms   uint64
}

func (g *idGenerator) next(now time.Time) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := uint64(now.UnixMilli())
	var b [16]byte
	if ms <= g.ms {
		// Same (or an earlier, if the clock stepped back) millisecond: keep the time and
		// add one to the 80-bit random part.
		b = g.last
		for i := 15; i >= 6; i-- {
			b[i]++
			if b[i] != 0 {
				break
			}
		}
	} else {
		binary.BigEndian.PutUint64(b[:8], ms<<16)
		if _, err := rand.Read(b[6:]); err != nil {
			panic("store: crypto/rand failed: " + err.Error()) // cannot happen on supported platforms
		}
		// Leave headroom so increments within the millisecond do not carry into the time.
		b[6] &= 0x7f
		g.ms = ms
	}
	g.last = b
	return idEncoding.EncodeToString(b[:])
}

// Now returns the current time as every backend stores it: UTC with millisecond precision.
// Timestamps round-trip identically on every backend only at this precision.
func Now() time.Time { return Timestamp(time.Now()) }

// Timestamp normalises t to UTC with millisecond precision.
func Timestamp(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Millisecond)
}

// TimestampPtr normalises an optional timestamp.
func TimestampPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := Timestamp(*t)
	return &v
}

// PrepareCreate fills what every Create method assigns when the caller left it empty: a new ID,
// and the creation and update times (normalised). Backends call it before inserting.
func PrepareCreate(id *string, created, updated *time.Time) {
	if *id == "" {
		*id = NewID()
	}
	if created.IsZero() {
		*created = Now()
	} else {
		*created = Timestamp(*created)
	}
	if updated != nil {
		if updated.IsZero() {
			*updated = *created
		} else {
			*updated = Timestamp(*updated)
		}
	}
}
