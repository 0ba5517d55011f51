package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// migration is one versioned schema step. Like the SQL migrations, steps are append-only:
// once released a step is never edited; a change is a new step. Every step must be safe to run
// twice (creating an existing index or collection is a no-op), because two replicas starting
// at once may both run it before either records it.
type migration struct {
	version int
	name    string
	up      func(ctx context.Context, db *mongo.Database) error
}

// migrations lists every step in version order.
var migrations = []migration{
	{1, "collections and indexes", migrateInitial},
	{2, "login limits", migrateLoginLimits},
	{3, "key checks", migrateKeyChecks},
	{4, "config entries as one document per scope revision", migrateConfigSets},
	{5, "device list sort indexes, device and fleet history", migrateDeviceSortIndexes},
	{6, "alerts", migrateAlerts},
	{7, "error report time indexes", migrateErrorReportTimes},
	{8, "error report received index", migrateErrorReportReceived},
}

// SchemaVersionLatest is the schema version this binary creates and understands.
func SchemaVersionLatest() int { return migrations[len(migrations)-1].version }

// schemaMigrationDoc records one applied step in schema_migrations.
type schemaMigrationDoc struct {
	Version   int       `bson:"_id"`
	Name      string    `bson:"name"`
	AppliedAt time.Time `bson:"applied_at"`
}

// Migrate applies the steps above the recorded version and returns the resulting version. A
// database whose recorded version is above SchemaVersionLatest is left untouched and
// store.ErrSchemaTooNew is returned.
func (s *Store) Migrate(ctx context.Context) (int, error) {
	current, err := s.SchemaVersion(ctx)
	if err != nil {
		return 0, err
	}
	if latest := SchemaVersionLatest(); current > latest {
		return current, fmt.Errorf("store: migrate mongodb: database is at version %d, this binary knows up to %d: %w",
			current, latest, store.ErrSchemaTooNew)
	}
	for _, m := range migrations {
		if m.version <= current {
			continue
		}
		if err := m.up(ctx, s.db); err != nil {
			return current, fmt.Errorf("store: migrate mongodb to version %d (%s): %w", m.version, m.name, err)
		}
		_, err := s.col(colSchemaMigrations).InsertOne(ctx, schemaMigrationDoc{
			Version: m.version, Name: m.name, AppliedAt: store.Now(),
		})
		if err != nil && !isDuplicate(err) { // a concurrent Migrate recorded it first
			return current, fmt.Errorf("store: record mongodb schema version %d: %w", m.version, err)
		}
		current = m.version
		s.log.Info("database migrated", "backend", "mongodb", "version", m.version, "step", m.name)
	}
	return current, nil
}

// SchemaVersion returns the highest recorded step, or 0 for an empty database.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var doc schemaMigrationDoc
	err := s.col(colSchemaMigrations).FindOne(ctx, bson.D{},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&doc)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("store: read mongodb schema version: %w", err)
	}
	return doc.Version, nil
}

// index describes one index of a collection.
type index struct {
	collection string
	name       string
	keys       bson.D
	unique     bool
}

func asc(fields ...string) bson.D {
	d := make(bson.D, 0, len(fields))
	for _, f := range fields {
		d = append(d, bson.E{Key: f, Value: 1})
	}
	return d
}

// initialIndexes are the unique indexes that mirror the SQL schema's unique constraints, and
// the indexes behind the list filters. Tenant-scoped lists lead with tenant_id.
var initialIndexes = []index{
	// Unique constraints.
	{colTenants, "slug_unique", asc("slug"), true},
	{colUsers, "email_unique", asc("email"), true},
	{colMemberships, "tenant_user_unique", asc("tenant_id", "user_id"), true},
	{colIdentities, "provider_subject_unique", asc("provider", "subject"), true},
	{colSessions, "token_hash_unique", asc("token_hash"), true},
	{colAPITokens, "hash_unique", asc("hash"), true},
	{colInvitations, "token_hash_unique", asc("token_hash"), true},
	{colOneTimeTokens, "hash_unique", asc("hash"), true},
	{colProjects, "tenant_name_unique", asc("tenant_id", "name"), true},
	{colReleases, "tenant_project_version_unique", asc("tenant_id", "project_id", "version"), true},
	{colConfigEntries, "tenant_scope_key_unique", asc("tenant_id", "scope", "scope_id", "key"), true},
	{colConfigVersions, "tenant_device_version_unique", asc("tenant_id", "device_id", "version"), true},
	{colRolloutDevices, "tenant_rollout_device_unique", asc("tenant_id", "rollout_id", "device_id"), true},
	{colErrorGroups, "tenant_fingerprint_unique", asc("tenant_id", "fingerprint"), true},
	{colErrorGroupDevices, "tenant_group_device_unique", asc("tenant_id", "group_id", "device_id"), true},

	// Lookups and list filters.
	{colMemberships, "user", asc("user_id"), false},
	{colIdentities, "user", asc("user_id"), false},
	{colSessions, "user", asc("user_id"), false},
	{colSessions, "expires", asc("expires_at"), false},
	{colSessions, "idle_expires", asc("idle_expires_at"), false},
	{colAPITokens, "tenant", asc("tenant_id", "_id"), false},
	{colAPITokens, "user", asc("user_id"), false},
	{colInvitations, "tenant", asc("tenant_id", "_id"), false},
	{colOneTimeTokens, "kind_user", asc("kind", "user_id"), false},
	{colProjects, "tenant", asc("tenant_id", "_id"), false},
	{colReleases, "tenant_project", asc("tenant_id", "project_id", "_id"), false},
	{colDevices, "tenant", asc("tenant_id", "_id"), false},
	{colDevices, "tenant_project", asc("tenant_id", "project_id"), false},
	{colDevices, "tenant_tags", asc("tenant_id", "tags"), false},
	{colCommands, "tenant_device_state", asc("tenant_id", "device_id", "state"), false},
	{colCommands, "tenant_state_expires", asc("tenant_id", "state", "expires_at"), false},
	{colCommands, "tenant_rollout", asc("tenant_id", "rollout_id"), false},
	{colRollouts, "tenant_project", asc("tenant_id", "project_id"), false},
	{colRolloutDevices, "tenant_device", asc("tenant_id", "device_id"), false},
	{colErrorGroups, "tenant_project", asc("tenant_id", "project_id"), false},
	{colErrorGroupDevices, "tenant_device", asc("tenant_id", "device_id"), false},
	{colErrorReports, "tenant_group", asc("tenant_id", "group_id", "_id"), false},
	{colErrorReports, "tenant_device", asc("tenant_id", "device_id", "_id"), false},
	{colAuditEvents, "tenant", asc("tenant_id", "_id"), false},
	{colAuditEvents, "tenant_resource", asc("tenant_id", "resource_type", "resource_id"), false},
}

// initialCollections is every collection the first step created, so an empty database shows
// its full shape. Later steps create their own.
var initialCollections = []string{colTenants, colUsers, colIdentities, colSessions, colOneTimeTokens,
	colSchemaMigrations, colMemberships, colAPITokens, colInvitations, colProjects, colReleases,
	colDevices, colConfigEntries, colConfigVersions, colCommands, colRollouts, colRolloutDevices,
	colErrorGroups, colErrorGroupDevices, colErrorReports, colAuditEvents, colTenantSettings}

// codeNamespaceExists is the server's error code for creating a collection that exists.
const codeNamespaceExists = 48

// createCollection creates the named collection; one that exists already is no error.
func createCollection(ctx context.Context, db *mongo.Database, name string) error {
	err := db.CreateCollection(ctx, name)
	var ce mongo.CommandError
	if err != nil && !(errors.As(err, &ce) && ce.Code == codeNamespaceExists) {
		return fmt.Errorf("create collection %s: %w", name, err)
	}
	return nil
}

func migrateInitial(ctx context.Context, db *mongo.Database) error {
	for _, name := range initialCollections {
		if err := createCollection(ctx, db, name); err != nil {
			return err
		}
	}
	return createIndexes(ctx, db, initialIndexes)
}

// createIndexes creates each index that does not exist yet. One index per createIndexes
// command: FerretDB v1.24 panics on a command that lists several indexes which all exist
// already (a slice bounds error in its handler), which is what a second run of a step sends.
// MongoDB accepts either form.
func createIndexes(ctx context.Context, db *mongo.Database, indexes []index) error {
	for _, ix := range indexes {
		o := options.Index().SetName(ix.name)
		if ix.unique {
			o.SetUnique(true)
		}
		if _, err := db.Collection(ix.collection).Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.keys, Options: o}); err != nil {
			return fmt.Errorf("create index %s on %s: %w", ix.name, ix.collection, err)
		}
	}
	return nil
}

// loginLimitIndexes make the natural key unique (concurrent first failures of one key create
// one document) and let the sweep find stale records without a collection scan.
var loginLimitIndexes = []index{
	{colLoginLimits, "key_unique", asc("key"), true},
	{colLoginLimits, "last_failure", asc("last_failure_at"), false},
}

// migrateLoginLimits adds the collection behind login rate limiting (store.LoginLimitStore).
// migrateKeyChecks creates key_checks (the master key check; only its _id is looked up).
func migrateKeyChecks(ctx context.Context, db *mongo.Database) error {
	return createCollection(ctx, db, colKeyChecks)
}

func migrateLoginLimits(ctx context.Context, db *mongo.Database) error {
	if err := createCollection(ctx, db, colLoginLimits); err != nil {
		return err
	}
	return createIndexes(ctx, db, loginLimitIndexes)
}

// configSetIndexes make a scope's revision numbers unique, which is what decides between two
// writers racing for the next revision (see config.go).
var configSetIndexes = []index{
	{colConfigSets, "tenant_scope_rev_unique", asc("tenant_id", "scope", "scope_id", "rev"), true},
}

// legacyConfigEntryDoc is a document of config_entries, one per key, as schema versions 1 and 2
// stored them.
type legacyConfigEntryDoc struct {
	TenantID string         `bson:"tenant_id"`
	Scope    string         `bson:"scope"`
	ScopeID  string         `bson:"scope_id"`
	Entry    configEntryDoc `bson:",inline"`
}

// migrateConfigSets moves config entries from one document per key to one document per scope
// revision, so that a batch is written in one insert (see config.go). Each scope becomes
// revision 1; a second run finds revision 1 taken (or config_entries gone) and skips it.
func migrateConfigSets(ctx context.Context, db *mongo.Database) error {
	if err := createCollection(ctx, db, colConfigSets); err != nil {
		return err
	}
	if err := createIndexes(ctx, db, configSetIndexes); err != nil {
		return err
	}
	cur, err := db.Collection(colConfigEntries).Find(ctx, bson.D{}, options.Find().
		SetSort(asc("tenant_id", "scope", "scope_id", "key")))
	if err != nil {
		return fmt.Errorf("read config entries: %w", err)
	}
	var docs []legacyConfigEntryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return fmt.Errorf("read config entries: %w", err)
	}
	var set *configSetDoc
	flush := func() error {
		if set == nil {
			return nil
		}
		if _, err := db.Collection(colConfigSets).InsertOne(ctx, set); err != nil && !isDuplicate(err) {
			return fmt.Errorf("write config set of %s %q: %w", set.Scope, set.ScopeID, err)
		}
		return nil
	}
	for _, d := range docs {
		if set == nil || set.TenantID != d.TenantID || set.Scope != d.Scope || set.ScopeID != d.ScopeID {
			if err := flush(); err != nil {
				return err
			}
			set = &configSetDoc{TenantID: d.TenantID, Scope: d.Scope, ScopeID: d.ScopeID, Rev: 1}
		}
		set.Entries = append(set.Entries, d.Entry)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := db.Collection(colConfigEntries).Drop(ctx); err != nil {
		return fmt.Errorf("drop config entries: %w", err)
	}
	return nil
}

// deviceSortIndexes serve the device list's orders: (field, _id) in one direction, read
// backwards for the other.
var deviceSortIndexes = []index{
	{colDevices, "tenant_name", asc("tenant_id", "name", "_id"), false},
	{colDevices, "tenant_last_seen", asc("tenant_id", "presence.last_seen_at", "_id"), false},
	{colDevices, "tenant_created", asc("tenant_id", "created_at", "_id"), false},
	{colDevices, "tenant_online", asc("tenant_id", "presence.online", "_id"), false},
	{colDevices, "tenant_firmware", asc("tenant_id", "metadata.firmware_version", "_id"), false},
	{colDevices, "tenant_project_sort", asc("tenant_id", "project_id", "_id"), false},
}

// historyIndexes serve a device's or tenant's newest samples and the retention sweep; a fleet
// sample is unique per tenant and time.
var historyIndexes = []index{
	{colDeviceSamples, "tenant_device_at", asc("tenant_id", "device_id", "at"), false},
	{colDeviceSamples, "at", asc("at"), false},
	{colFleetSamples, "tenant_at_unique", asc("tenant_id", "at"), true},
	{colFleetSamples, "at", asc("at"), false},
}

func migrateDeviceSortIndexes(ctx context.Context, db *mongo.Database) error {
	for _, name := range []string{colDeviceSamples, colFleetSamples} {
		if err := createCollection(ctx, db, name); err != nil {
			return err
		}
	}
	return createIndexes(ctx, db, append(slices.Clone(deviceSortIndexes), historyIndexes...))
}

// alertIndexes back the alert lists and the outbox's due scan.
var alertIndexes = []index{
	{colAlertChannels, "tenant", asc("tenant_id", "_id"), false},
	{colAlertRules, "tenant", asc("tenant_id", "_id"), false},
	{colAlerts, "tenant", asc("tenant_id", "_id"), false},
	{colAlerts, "tenant_state", asc("tenant_id", "state", "_id"), false},
	{colAlertDeliveries, "tenant", asc("tenant_id", "_id"), false},
	{colAlertDeliveries, "tenant_channel", asc("tenant_id", "channel_id", "_id"), false},
	{colAlertDeliveries, "due", asc("state", "next_attempt_at"), false},
	{colPushSubscriptions, "tenant_endpoint_unique", asc("tenant_id", "endpoint"), true},
	{colPushSubscriptions, "tenant", asc("tenant_id", "_id"), false},
}

// migrateAlerts adds the collections of alert rules, channels, alerts, deliveries, Web Push
// subscriptions and server secrets.
func migrateAlerts(ctx context.Context, db *mongo.Database) error {
	for _, name := range []string{colAlertChannels, colAlertRules, colAlerts, colAlertDeliveries, colPushSubscriptions, colServerSecrets} {
		if err := createCollection(ctx, db, name); err != nil {
			return err
		}
	}
	return createIndexes(ctx, db, alertIndexes)
}

// errorReportTimeIndexes serve the error trend (CountErrorReportsByDay): a tenant's or a
// group's reports in a time range.
var errorReportTimeIndexes = []index{
	{colErrorReports, "tenant_received", asc("tenant_id", "received_at"), false},
	{colErrorReports, "tenant_group_received", asc("tenant_id", "group_id", "received_at"), false},
}

func migrateErrorReportTimes(ctx context.Context, db *mongo.Database) error {
	return createIndexes(ctx, db, errorReportTimeIndexes)
}

// errorReportReceivedIndex serves the retention sweep (ExpiredErrorReports): the oldest reports
// of every tenant, which the tenant-first indexes of step 7 cannot find without a scan.
var errorReportReceivedIndex = []index{
	{colErrorReports, "received", asc("received_at", "_id"), false},
}

func migrateErrorReportReceived(ctx context.Context, db *mongo.Database) error {
	return createIndexes(ctx, db, errorReportReceivedIndex)
}
