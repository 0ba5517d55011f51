package mongostore

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// Config entries. A scope's entries (one device's or one project's) are stored together, one
// document per revision of the scope in config_sets:
//
//	{tenant_id, scope, scope_id, rev, entries: [{key, type, value, …, version}, …]}
//
// with a unique index on (tenant_id, scope, scope_id, rev). The current entries are those of
// the highest revision. A write reads the current revision, checks the versions the caller
// gave, and inserts revision+1 holding the whole new set; then it removes the revisions below
// its own. Every guarantee follows from two properties that hold on any MongoDB, and on
// FerretDB too: a single insert is atomic, and the unique index lets only one of two racing
// inserts of the same revision in.
//
//   - A batch is one document: readers see all of it or none of it, and a refused batch
//     writes nothing.
//   - Two writers that read the same revision race for the next one; the loser reads again
//     and checks its versions against the winner's set, so a stale version is always
//     store.ErrConflict and a write to other keys is applied on top.
//   - Each revision carries a random token and the token of the revision it was built on
//     (base). A writer that finds a higher revision after its insert looks at the one right
//     above its own: built on its token, its write is in the chain and stands; built on
//     anything else, or missing, its read was so old that the revision it inserted had
//     already been removed, so it withdraws its document and reads again.
//
// A write removes the revisions more than configKeptRevisions below its own, so the revision
// right above a fresh insert is still there when its writer checks, unless that many writes of
// the same scope land in between; a clean-up that fails leaves old revisions behind harmlessly
// (the highest revision wins) until the next write removes them.

// configWriteAttempts bounds how often a write starts again after losing a race for the next
// revision to writers of other keys of the same scope.
const configWriteAttempts = 16

// configKeptRevisions is how many revisions of a scope a write keeps below its own, so that
// the writer of the revision just below can still tell whether its write was built upon.
const configKeptRevisions = 8

type configEntryDoc struct {
	Key         string    `bson:"key"`
	Type        string    `bson:"type"`
	Value       string    `bson:"value"`
	Secret      bool      `bson:"secret"`
	ValueSealed []byte    `bson:"value_sealed"`
	Version     int64     `bson:"version"`
	UpdatedBy   string    `bson:"updated_by"`
	UpdatedAt   time.Time `bson:"updated_at"`
}

// configSetDoc is one revision of a scope's entries, sorted by key.
type configSetDoc struct {
	TenantID string `bson:"tenant_id"`
	Scope    string `bson:"scope"`
	ScopeID  string `bson:"scope_id"`
	Rev      int64  `bson:"rev"`
	// Token is random per revision; Base is the Token of the revision this one was built on
	// (empty for the first, and for revisions from before tokens).
	Token   string           `bson:"token,omitempty"`
	Base    string           `bson:"base,omitempty"`
	Entries []configEntryDoc `bson:"entries"`
}

func configEntryToDoc(e *store.ConfigEntry) configEntryDoc {
	return configEntryDoc{
		Key: e.Key, Type: string(e.Type), Value: e.Value, Secret: e.Secret, ValueSealed: e.ValueSealed,
		Version: e.Version, UpdatedBy: e.UpdatedBy, UpdatedAt: e.UpdatedAt,
	}
}

func (set configSetDoc) entry(d configEntryDoc) store.ConfigEntry {
	return store.ConfigEntry{
		TenantID: set.TenantID, Scope: store.ConfigScope(set.Scope), ScopeID: set.ScopeID, Key: d.Key,
		Type: store.ConfigType(d.Type), Value: d.Value, Secret: d.Secret, ValueSealed: d.ValueSealed,
		Version: d.Version, UpdatedBy: d.UpdatedBy, UpdatedAt: utc(d.UpdatedAt),
	}
}

func configScopeKey(tenantID string, scope store.ConfigScope, scopeID string) bson.D {
	return bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "scope", Value: string(scope)},
		{Key: "scope_id", Value: scopeID},
	}
}

// configSet returns the current revision of a scope's entries; a scope without entries is an
// empty set at revision 0.
func (s *Store) configSet(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) (configSetDoc, error) {
	var set configSetDoc
	err := s.col(colConfigSets).FindOne(ctx, configScopeKey(tenantID, scope, scopeID),
		options.FindOne().SetSort(bson.D{{Key: "rev", Value: -1}})).Decode(&set)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return configSetDoc{TenantID: tenantID, Scope: string(scope), ScopeID: scopeID}, nil
	}
	return set, err
}

// ConfigEntry returns one entry of a scope.
func (s *Store) ConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string) (store.ConfigEntry, error) {
	set, err := s.configSet(ctx, tenantID, scope, scopeID)
	if err != nil {
		return store.ConfigEntry{}, wrap(err, "get config entry %q of %s %q", key, scope, scopeID)
	}
	for _, d := range set.Entries {
		if d.Key == key {
			return set.entry(d), nil
		}
	}
	return store.ConfigEntry{}, notFound("get config entry %q of %s %q", key, scope, scopeID)
}

// ConfigEntries lists a scope's entries ordered by key.
func (s *Store) ConfigEntries(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string) ([]store.ConfigEntry, error) {
	set, err := s.configSet(ctx, tenantID, scope, scopeID)
	if err != nil {
		return nil, wrap(err, "list config entries of %s %q", scope, scopeID)
	}
	out := make([]store.ConfigEntry, 0, len(set.Entries))
	for _, d := range set.Entries {
		out = append(out, set.entry(d))
	}
	return out, nil
}

// errConfigRace means another writer took the revision a write wanted; the write starts again.
var errConfigRace = errors.New("config set revision taken")

// writeConfigSet applies change to the current entries of a scope (keyed by key) and stores
// the result as the next revision, starting again when another writer got there first. change
// returns store.ErrConflict (wrapped) when the caller's versions do not match.
func (s *Store) writeConfigSet(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID string,
	change func(entries map[string]configEntryDoc) error) error {
	for range configWriteAttempts {
		cur, err := s.configSet(ctx, tenantID, scope, scopeID)
		if err != nil {
			return err
		}
		entries := make(map[string]configEntryDoc, len(cur.Entries))
		for _, d := range cur.Entries {
			entries[d.Key] = d
		}
		if err := change(entries); err != nil {
			return err
		}
		next := configSetDoc{TenantID: tenantID, Scope: string(scope), ScopeID: scopeID, Rev: cur.Rev + 1,
			Token: rand.Text(), Base: cur.Token, Entries: make([]configEntryDoc, 0, len(entries))}
		for _, d := range entries {
			next.Entries = append(next.Entries, d)
		}
		slices.SortFunc(next.Entries, func(a, b configEntryDoc) int { return strings.Compare(a.Key, b.Key) })
		err = s.insertConfigSet(ctx, next)
		if errors.Is(err, errConfigRace) {
			continue
		}
		return err
	}
	return conflict("write config entries of %s %q: %d writers in a row got there first", scope, scopeID, configWriteAttempts)
}

// insertConfigSet inserts set as its scope's next revision and removes the old ones. It
// returns errConfigRace when the revision is taken, or when a higher revision exists that was
// not built on this one (the write was based on a revision that has since been removed), in
// which case it withdraws its document.
func (s *Store) insertConfigSet(ctx context.Context, set configSetDoc) error {
	c := s.col(colConfigSets)
	scope := configScopeKey(set.TenantID, store.ConfigScope(set.Scope), set.ScopeID)
	if _, err := c.InsertOne(ctx, set); err != nil {
		if isDuplicate(err) {
			return errConfigRace
		}
		return err
	}
	stands, err := s.configSetStands(ctx, scope, set)
	if err == nil && !stands {
		_, err = c.DeleteOne(ctx, append(slices.Clone(scope), bson.E{Key: "token", Value: set.Token}))
		if err == nil {
			return errConfigRace
		}
	}
	if err != nil {
		// The document is in place, but whether it is part of the current chain is unknown;
		// report the failure rather than claim success.
		return err
	}
	if _, err := c.DeleteMany(ctx, append(slices.Clone(scope), bson.E{Key: "rev", Value: bson.D{{Key: "$lte", Value: set.Rev - configKeptRevisions}}})); err != nil {
		s.log.Warn("old config revisions left in place", "tenant_id", set.TenantID, "scope", set.Scope,
			"scope_id", set.ScopeID, "error", err)
	}
	return nil
}

// configSetStands reports whether a just-inserted revision is part of its scope's chain: no
// revision above it, or the one right above it was built on it.
func (s *Store) configSetStands(ctx context.Context, scope bson.D, set configSetDoc) (bool, error) {
	c := s.col(colConfigSets)
	newer, err := exists(ctx, c, append(slices.Clone(scope), bson.E{Key: "rev", Value: bson.D{{Key: "$gt", Value: set.Rev}}}))
	if err != nil || !newer {
		return !newer, err
	}
	var above configSetDoc
	err = c.FindOne(ctx, append(slices.Clone(scope), bson.E{Key: "rev", Value: set.Rev + 1})).Decode(&above)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return above.Base == set.Token, nil
}

// PutConfigEntries writes a batch of one scope's entries as one new revision of the scope, with
// a version check on every entry: either the whole batch is applied or, with
// store.ErrConflict, nothing.
func (s *Store) PutConfigEntries(ctx context.Context, entries []store.ConfigEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := store.CheckConfigBatch(entries); err != nil {
		return err
	}
	first := entries[0]
	now := store.Now()
	err := s.writeConfigSet(ctx, first.TenantID, first.Scope, first.ScopeID, func(stored map[string]configEntryDoc) error {
		seen := make(map[string]bool, len(entries))
		for _, e := range entries {
			if seen[e.Key] {
				return conflict("put config entries: key %q of %s %q appears twice in the batch", e.Key, e.Scope, e.ScopeID)
			}
			seen[e.Key] = true
			doc, ok := stored[e.Key]
			switch {
			case !ok && e.Version != 0:
				return conflict("put config entry %q of %s %q: version %d, but it does not exist", e.Key, e.Scope, e.ScopeID, e.Version)
			case ok && doc.Version != e.Version:
				return conflict("put config entry %q of %s %q: version %d, stored %d", e.Key, e.Scope, e.ScopeID, e.Version, doc.Version)
			}
			e.Version++
			e.UpdatedAt = now
			stored[e.Key] = configEntryToDoc(&e)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrConflict) {
			return err
		}
		return wrap(err, "put %d config entries of %s %q", len(entries), first.Scope, first.ScopeID)
	}
	for i := range entries {
		entries[i].Version++
		entries[i].UpdatedAt = now
	}
	return nil
}

// DeleteConfigEntry deletes a key if its stored version is version, as a new revision of the
// scope without it.
func (s *Store) DeleteConfigEntry(ctx context.Context, tenantID string, scope store.ConfigScope, scopeID, key string, version int64) error {
	err := s.writeConfigSet(ctx, tenantID, scope, scopeID, func(stored map[string]configEntryDoc) error {
		doc, ok := stored[key]
		switch {
		case !ok:
			return notFound("delete config entry %q of %s %q", key, scope, scopeID)
		case doc.Version != version:
			return conflict("delete config entry %q of %s %q: version %d is not the stored one", key, scope, scopeID, version)
		}
		delete(stored, key)
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return wrap(err, "delete config entry %q of %s %q", key, scope, scopeID)
	}
	return err
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
