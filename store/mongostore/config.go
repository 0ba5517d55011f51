package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// Config entries. A document is identified by (tenant_id, scope, scope_id, key) under a unique
// index; its _id is the server's ObjectID and never leaves this package.

type configEntryDoc struct {
	TenantID    string    `bson:"tenant_id"`
	Scope       string    `bson:"scope"`
	ScopeID     string    `bson:"scope_id"`
	Key         string    `bson:"key"`
	Type        string    `bson:"type"`
	Value       string    `bson:"value"`
	Secret      bool      `bson:"secret"`
	ValueSealed []byte    `bson:"value_sealed"`
	Version     int64     `bson:"version"`
	UpdatedBy   string    `bson:"updated_by"`
	UpdatedAt   time.Time `bson:"updated_at"`
}

func configEntryToDoc(e *store.ConfigEntry) configEntryDoc {
	return configEntryDoc{
		TenantID: e.TenantID, Scope: string(e.Scope), ScopeID: e.ScopeID, Key: e.Key, Type: string(e.Type),
		Value: e.Value, Secret: e.Secret, ValueSealed: e.ValueSealed, Version: e.Version,
		UpdatedBy: e.UpdatedBy, UpdatedAt: e.UpdatedAt,
	}
}

func configEntryFromDoc(d configEntryDoc) store.ConfigEntry {
	return store.ConfigEntry{
		TenantID: d.TenantID, Scope: store.ConfigScope(d.Scope), ScopeID: d.ScopeID, Key: d.Key, Type: store.ConfigType(d.Type),
		Value: d.Value, Secret: d.Secret, ValueSealed: d.ValueSealed, Version: d.Version,
		UpdatedBy: d.UpdatedBy, UpdatedAt: utc(d.UpdatedAt),
	}
}

func configEntryKey(tenantID string, scope store.ConfigScope, scopeID, key string) bson.D {
	return bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "scope", Value: string(scope)},
		{Key: "scope_id", Value: scopeID},
		{Key: "key", Value: key},
	}
}

// ConfigEntry returns one entry of a scope.
func (s *Store) ConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string) (store.ConfigEntry, error) {
	e, err := findOne(ctx, s.col(colConfigEntries), configEntryKey(tenantID, scope, scopeID, key), configEntryFromDoc)
	return e, wrap(err, "get config entry %q of %s %q", key, scope, scopeID)
}

// ConfigEntries lists a scope's entries ordered by key.
func (s *Store) ConfigEntries(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) ([]store.ConfigEntry, error) {
	es, err := findAll(ctx, s.col(colConfigEntries), bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "scope", Value: string(scope)},
		{Key: "scope_id", Value: scopeID},
	}, configEntryFromDoc, options.Find().SetSort(asc("key")))
	return es, wrap(err, "list config entries of %s %q", scope, scopeID)
}

// PutConfigEntries writes a batch with a version check on every entry.
//
// Without multi-document transactions the batch cannot be one atomic write, so it is done in
// two phases:
//
//  1. Every entry's stored version is read and compared with the caller's; if any differs
//     (or a key appears twice in the batch), store.ErrConflict is returned and nothing is
//     written. This is the common case of a stale editor, and it is exact.
//  2. Each entry is written with its own conditional write: an insert that the unique index
//     refuses if the key appeared meanwhile (version 0), or an update whose filter holds the
//     expected version. If one of them fails because a concurrent writer changed that entry
//     between the two phases, the entries this call already wrote are put back as they were,
//     each again conditionally (only if still at the version this call gave it), and
//     store.ErrConflict is returned.
//
// What this guarantees: no write is ever based on a stale version (every single write is
// conditional), a refused batch leaves the stored entries as they were unless another writer
// modified them meanwhile, and readers see either the old or the new value of each entry.
// What it does not: readers may briefly see part of a batch applied, and a crash of the process
// in the middle of phase 2 leaves the entries written so far in place.
func (s *Store) PutConfigEntries(ctx context.Context, entries []store.ConfigEntry) error {
	if len(entries) == 0 {
		return nil
	}
	c := s.col(colConfigEntries)

	// Phase 1: check every version before writing anything.
	previous := make([]*configEntryDoc, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, e := range entries {
		id := fmt.Sprintf("%s/%s/%s/%s", e.TenantID, e.Scope, e.ScopeID, e.Key)
		if seen[id] {
			return conflict("put config entries: key %q of %s %q appears twice in the batch", e.Key, e.Scope, e.ScopeID)
		}
		seen[id] = true
		var doc configEntryDoc
		err := c.FindOne(ctx, configEntryKey(e.TenantID, e.Scope, e.ScopeID, e.Key)).Decode(&doc)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			if e.Version != 0 {
				return conflict("put config entry %q of %s %q: version %d, but it does not exist", e.Key, e.Scope, e.ScopeID, e.Version)
			}
		case err != nil:
			return wrap(err, "put config entry %q of %s %q", e.Key, e.Scope, e.ScopeID)
		default:
			if doc.Version != e.Version {
				return conflict("put config entry %q of %s %q: version %d, stored %d", e.Key, e.Scope, e.ScopeID, e.Version, doc.Version)
			}
			previous[i] = &doc
		}
	}

	// Phase 2: conditional writes, undone on a lost race.
	now := store.Now()
	written := make([]configEntryDoc, 0, len(entries))
	for i := range entries {
		e := entries[i]
		e.Version++
		e.UpdatedAt = now
		doc := configEntryToDoc(&e)
		key := configEntryKey(e.TenantID, e.Scope, e.ScopeID, e.Key)
		var err error
		if previous[i] == nil {
			_, err = c.InsertOne(ctx, doc)
			if isDuplicate(err) {
				err = conflict("put config entry %q of %s %q: created concurrently", e.Key, e.Scope, e.ScopeID)
			}
		} else {
			var res *mongo.UpdateResult
			res, err = c.UpdateOne(ctx, append(key, bson.E{Key: "version", Value: entries[i].Version}),
				bson.D{{Key: "$set", Value: doc}})
			if err == nil && res.MatchedCount == 0 {
				err = conflict("put config entry %q of %s %q: changed concurrently", e.Key, e.Scope, e.ScopeID)
			}
		}
		if err != nil {
			s.undoConfigEntries(ctx, written, previous)
			if errors.Is(err, store.ErrConflict) {
				return err
			}
			return wrap(err, "put config entry %q of %s %q", e.Key, e.Scope, e.ScopeID)
		}
		written = append(written, doc)
	}
	for i := range entries {
		entries[i].Version++
		entries[i].UpdatedAt = now
	}
	return nil
}

// undoConfigEntries puts back the entries a failed PutConfigEntries wrote (written[i] is the
// new document of entry i, previous[i] what was there before, nil for none). Each undo applies
// only while the entry still holds this call's version, so it never erases another writer's
// change. Undo errors are logged: the caller's error already says the batch failed.
func (s *Store) undoConfigEntries(ctx context.Context, written []configEntryDoc, previous []*configEntryDoc) {
	c := s.col(colConfigEntries)
	for i, doc := range written {
		filter := append(configEntryKey(doc.TenantID, store.ConfigScope(doc.Scope), doc.ScopeID, doc.Key),
			bson.E{Key: "version", Value: doc.Version})
		var err error
		if previous[i] == nil {
			_, err = c.DeleteOne(ctx, filter)
		} else {
			_, err = c.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: *previous[i]}})
		}
		if err != nil {
			s.log.Error("config entry left as written by a failed batch", "tenant_id", doc.TenantID,
				"scope", doc.Scope, "scope_id", doc.ScopeID, "key", doc.Key, "error", err)
		}
	}
}

// DeleteConfigEntry deletes a key if its stored version is version.
func (s *Store) DeleteConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string, version int64) error {
	c := s.col(colConfigEntries)
	k := configEntryKey(tenantID, scope, scopeID, key)
	res, err := c.DeleteOne(ctx, append(append(bson.D{}, k...), bson.E{Key: "version", Value: version}))
	if err != nil {
		return wrap(err, "delete config entry %q of %s %q", key, scope, scopeID)
	}
	if res.DeletedCount == 1 {
		return nil
	}
	ok, err := exists(ctx, c, k)
	if err != nil {
		return wrap(err, "delete config entry %q of %s %q", key, scope, scopeID)
	}
	if ok {
		return conflict("delete config entry %q of %s %q: version %d is not the stored one", key, scope, scopeID, version)
	}
	return notFound("delete config entry %q of %s %q", key, scope, scopeID)
}

// Config versions, identified by (tenant_id, device_id, version) under a unique index.

type configVersionDoc struct {
	TenantID  string    `bson:"tenant_id"`
	DeviceID  string    `bson:"device_id"`
	Version   int64     `bson:"version"`
	Hash      string    `bson:"hash"`
	Snapshot  string    `bson:"snapshot"`
	Reason    string    `bson:"reason"`
	CreatedBy string    `bson:"created_by"`
	CreatedAt time.Time `bson:"created_at"`
}

func configVersionFromDoc(d configVersionDoc) store.ConfigVersion {
	v := store.ConfigVersion(d)
	v.CreatedAt = utc(v.CreatedAt)
	return v
}

// CreateConfigVersion appends a version; a number already used for the device is
// store.ErrConflict (the unique index decides between racing writers).
func (s *Store) CreateConfigVersion(ctx context.Context, v *store.ConfigVersion) error {
	v.CreatedAt = orNow(v.CreatedAt)
	_, err := s.col(colConfigVersions).InsertOne(ctx, configVersionDoc(*v))
	return wrap(err, "create config version %d of device %q", v.Version, v.DeviceID)
}

func configVersionsOf(tenantID, deviceID string) bson.D {
	return bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "device_id", Value: deviceID}}
}

// ConfigVersion returns one version of a device's config.
func (s *Store) ConfigVersion(ctx context.Context, tenantID, deviceID string, version int64) (store.ConfigVersion, error) {
	filter := append(configVersionsOf(tenantID, deviceID), bson.E{Key: "version", Value: version})
	v, err := findOne(ctx, s.col(colConfigVersions), filter, configVersionFromDoc)
	return v, wrap(err, "get config version %d of device %q", version, deviceID)
}

// LatestConfigVersion returns the device's highest version.
func (s *Store) LatestConfigVersion(ctx context.Context, tenantID, deviceID string) (store.ConfigVersion, error) {
	v, err := findOne(ctx, s.col(colConfigVersions), configVersionsOf(tenantID, deviceID), configVersionFromDoc,
		options.FindOne().SetSort(bson.D{{Key: "version", Value: -1}}))
	return v, wrap(err, "get latest config version of device %q", deviceID)
}

// ListConfigVersions pages through a device's versions; the cursor is the version number.
func (s *Store) ListConfigVersions(ctx context.Context, tenantID, deviceID string, opts store.ListOptions) (store.Page[store.ConfigVersion], error) {
	p, err := listPage(ctx, s.col(colConfigVersions),
		pageQuery{
			filter: configVersionsOf(tenantID, deviceID), field: "version", listOpts: opts,
			parse: func(c string) (any, error) { return strconv.ParseInt(c, 10, 64) },
		},
		configVersionFromDoc, func(v store.ConfigVersion) string { return strconv.FormatInt(v.Version, 10) })
	return p, wrap(err, "list config versions of device %q", deviceID)
}
