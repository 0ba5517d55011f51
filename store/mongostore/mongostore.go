// Package mongostore implements store.Store on MongoDB through go.mongodb.org/mongo-driver/v2.
//
// Every record lives in one document of its aggregate's collection; the document's _id is the
// domain ID, and records keyed by natural fields (config versions, rollout devices, error
// group devices) keep those fields with a unique index instead. Config entries are the
// exception: a scope's entries share one document (see config.go). The unique
// indexes mirror the SQL schema's unique constraints, so both backends refuse the same writes
// with store.ErrConflict.
//
// The store's own guarantees do not depend on multi-document transactions, because FerretDB
// (which serves the MongoDB wire protocol in the tests) and a MongoDB without a replica set
// cannot run them. Atomicity comes from single-document writes: conditional updates (the
// expected state or version is part of the filter), update operators that commute ($inc,
// $max, $min, $set on disjoint fields), and, where a write must cover several records, a
// model that keeps them in one document. A scope's config entries are one document per
// revision (see config.go), so a batch is applied whole or not at all and readers never see
// half of it. Where an operation spans several documents (deleting a tenant and its data)
// the comments there say what is guaranteed.
//
// Store.Atomic uses a session with a multi-document transaction when the deployment
// supports them (a replica set or a sharded cluster, detected at Open); elsewhere it runs its
// function without one, and Transactions reports false.
//
// # What FerretDB cannot do
//
// FerretDB v1 (1.24, the version the tests embed) has these limits, which this package
// documents rather than hides:
//
//   - no multi-document transactions, so Atomic's writes taken together are not atomic
//     there (each single write still is);
//   - no isolation between concurrent updates of one document: it runs an update or a
//     findAndModify as a query followed by a write of the whole modified document, with
//     nothing in between that detects a concurrent change (internal/handler/msg_update.go).
//     Two concurrent updates of one document can lose one of them, even when they $set
//     different fields, and a conditional update's filter can match a state another writer
//     has just replaced, so two racing compare-and-set writes can both succeed.
//
// Inserts are atomic on FerretDB and unique indexes hold, which is why config entries are
// written as new revision documents rather than updated in place: they keep all their
// guarantees there. Everything else that relies on conditional updates (command state
// transitions, one-time token consumption, presence and metadata written by concurrent
// writers) is safe on FerretDB only while one writer at a time touches a document. Run
// deployments with concurrent writers, and every deployment with several replicas, on
// MongoDB.
//
// Timestamps are BSON dates: UTC with millisecond precision, matching store.Timestamp. Every
// time read back is converted to UTC explicitly.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/espadmin/espadmin/store"
)

// DefaultDatabase is used when the URL names no database.
const DefaultDatabase = "espadmin"

// Timeouts applied by Open when the URL does not set its own. They keep a wrong or unreachable
// URL from blocking the start for the driver's default 30 seconds.
const (
	defaultServerSelectionTimeout = 5 * time.Second
	defaultConnectTimeout         = 5 * time.Second
	pingTimeout                   = 10 * time.Second
)

// Collection names.
const (
	colTenants           = "tenants"
	colTenantSettings    = "tenant_settings"
	colUsers             = "users"
	colMemberships       = "memberships"
	colIdentities        = "identities"
	colSessions          = "sessions"
	colAPITokens         = "api_tokens"
	colInvitations       = "invitations"
	colOneTimeTokens     = "one_time_tokens"
	colProjects          = "projects"
	colReleases          = "releases"
	colDevices           = "devices"
	colConfigEntries     = "config_entries" // until schema version 3; see migrateConfigSets
	colConfigSets        = "config_sets"
	colConfigVersions    = "config_versions"
	colCommands          = "commands"
	colRollouts          = "rollouts"
	colRolloutDevices    = "rollout_devices"
	colErrorGroups       = "error_groups"
	colErrorGroupDevices = "error_group_devices"
	colErrorReports      = "error_reports"
	colAuditEvents       = "audit_events"
	colLoginLimits       = "login_limits"
	colSchemaMigrations  = "schema_migrations"
	colKeyChecks         = "key_checks"
	colDeviceSamples     = "device_samples"
	colFleetSamples      = "fleet_samples"
	colAlertChannels     = "alert_channels"
	colAlertRules        = "alert_rules"
	colAlerts            = "alerts"
	colAlertDeliveries   = "alert_deliveries"
	colPushSubscriptions = "push_subscriptions"
	colServerSecrets     = "server_secrets"
)

// tenantCollections are the collections whose documents carry a tenant_id and belong to that
// tenant; DeleteTenant empties them of the tenant's documents.
var tenantCollections = []string{
	colMemberships, colAPITokens, colInvitations, colProjects, colReleases, colDevices,
	colConfigSets, colConfigVersions, colCommands, colRollouts, colRolloutDevices,
	colErrorGroups, colErrorGroupDevices, colErrorReports, colAuditEvents, colTenantSettings,
	colDeviceSamples, colFleetSamples,
	colAlertChannels, colAlertRules, colAlerts, colAlertDeliveries, colPushSubscriptions,
}

// Options configure Open.
type Options struct {
	// Logger receives connection events; nil discards them.
	Logger *slog.Logger
}

// Store is the MongoDB backend. It is safe for concurrent use; the driver pools connections.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	log    *slog.Logger
	// txns records whether the deployment runs multi-document transactions.
	txns bool
	// ferret is set when the server is FerretDB (see the package comment for its limits).
	ferret bool
	// sess is the session of the transaction Atomic bound this Store to; nil otherwise.
	sess *mongo.Session
}

var _ store.Store = (*Store)(nil)

// Open connects to the MongoDB server at mongoURL (mongodb:// or mongodb+srv://) and checks
// that it answers. The database is the URL's path, or DefaultDatabase when it has none. Errors
// name the URL with its password redacted. Open does not migrate; call Migrate. When the
// server is FerretDB, Open logs a warning naming its limits (see the package comment).
func Open(ctx context.Context, mongoURL string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	shown := RedactURL(mongoURL)
	password := urlPassword(mongoURL)
	fail := func(what string, err error) error {
		return &redactedError{
			msg: fmt.Sprintf("store: %s mongodb %s: %s", what, shown, redact(err.Error(), password)),
			err: err,
		}
	}

	cs, err := connstring.ParseAndValidate(mongoURL)
	if err != nil {
		return nil, fail("parse URL of", err)
	}
	database := cs.Database
	if database == "" {
		database = DefaultDatabase
	}

	clientOpts := options.Client().ApplyURI(mongoURL)
	if !cs.ServerSelectionTimeoutSet {
		clientOpts.SetServerSelectionTimeout(defaultServerSelectionTimeout)
	}
	if !cs.ConnectTimeoutSet {
		clientOpts.SetConnectTimeout(defaultConnectTimeout)
	}
	client, err := mongo.Connect(clientOpts)
	if err != nil {
		return nil, fail("connect to", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := client.Ping(pingCtx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fail("reach", err)
	}
	s := &Store{client: client, db: client.Database(database), log: log}
	ferretVersion, err := s.ferretDBVersion(pingCtx)
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fail("identify server of", err)
	}
	if ferretVersion != "" {
		s.ferret = true
		log.Warn("FerretDB does not isolate concurrent updates of one document and has no transactions; "+
			"run deployments with concurrent writers or several replicas on MongoDB", "ferretdb_version", ferretVersion)
	} else if s.txns, err = s.supportsTransactions(pingCtx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fail("identify server of", err)
	}
	log.Info("database connected", "backend", "mongodb", "url", shown, "database", database)
	return s, nil
}

// ferretDBVersion returns the FerretDB version the server reports in buildInfo, or "" for a
// MongoDB server.
func (s *Store) ferretDBVersion(ctx context.Context) (string, error) {
	var info struct {
		FerretDBVersion string `bson:"ferretdbVersion"`
	}
	err := s.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info)
	return info.FerretDBVersion, err
}

// supportsTransactions reports whether the server is a replica set member or a mongos, the
// deployments where MongoDB runs multi-document transactions.
func (s *Store) supportsTransactions(ctx context.Context) (bool, error) {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	if err := s.db.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello); err != nil {
		return false, err
	}
	return hello.SetName != "" || hello.Msg == "isdbgrid", nil
}

// Transactions reports whether Atomic runs its function in a multi-document transaction.
// It is false on FerretDB and on a standalone MongoDB server.
func (s *Store) Transactions() bool { return s.txns }

// IsolatedUpdates reports whether concurrent updates of one document are isolated from each
// other, as MongoDB guarantees. It is false on FerretDB (see the package comment).
func (s *Store) IsolatedUpdates() bool { return !s.ferret }

// Atomic runs fn in a multi-document transaction when the deployment supports them; see
// store.Transactor. The driver's WithTransaction retries fn after a transient error and the
// commit after an unknown outcome. A panic in fn ends the session, which aborts the
// transaction, and goes on. A nested call joins the open transaction. Without transaction
// support fn runs on s directly: each of its writes is atomic on its own only.
func (s *Store) Atomic(ctx context.Context, fn func(tx store.Store) error) error {
	if s.sess != nil || !s.txns {
		return fn(s)
	}
	sess, err := s.client.StartSession()
	if err != nil {
		return fmt.Errorf("store: start mongodb session: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		bound := *s
		bound.sess = sess
		return nil, fn(&bound)
	})
	return err
}

// Backend returns "mongodb".
func (s *Store) Backend() string { return "mongodb" }

// Database returns the name of the database the store uses.
func (s *Store) Database() string { return s.db.Name() }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return wrap(err, "ping mongodb")
	}
	return nil
}

// Close disconnects, waiting for in-use connections to be returned for at most ten seconds.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("store: close mongodb: %w", err)
	}
	return nil
}

// col returns the named collection, bound to the store's transaction when it has one.
func (s *Store) col(name string) collection {
	return collection{c: s.db.Collection(name), sess: s.sess}
}

// RedactURL returns u with the password of its user information replaced by "xxxxx", also
// when u is not a valid URL, so it can go into error messages and logs.
func RedactURL(u string) string {
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return u
	}
	rest := u[scheme+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return u
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return u
	}
	return u[:scheme+3] + rest[:colon+1] + "xxxxx" + rest[at:]
}

// urlPassword extracts the password as RedactURL finds it (still percent-encoded), so that
// error texts quoting it can be cleaned too.
func urlPassword(u string) string {
	scheme := strings.Index(u, "://")
	if scheme < 0 {
		return ""
	}
	rest := u[scheme+3:]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return ""
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return ""
	}
	return rest[colon+1 : at]
}

// redact removes password from s, in the URL's percent-encoded form and decoded.
func redact(s, password string) string {
	if password == "" {
		return s
	}
	s = strings.ReplaceAll(s, password, "xxxxx")
	if decoded, err := url.PathUnescape(password); err == nil && decoded != "" {
		s = strings.ReplaceAll(s, decoded, "xxxxx")
	}
	return s
}

// redactedError carries a message without secrets while keeping the driver's error for
// errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// utc converts a time read from BSON to UTC; the zero time stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := utc(*t)
	return &v
}

// orNow returns t normalised, or the current time when t is zero.
func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return store.Now()
	}
	return store.Timestamp(t)
}

// wrap maps driver errors to the store's sentinels and adds context. A nil err stays nil.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	msg := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return fmt.Errorf("store: %s: %w", msg, store.ErrNotFound)
	case isDuplicate(err):
		return fmt.Errorf("store: %s: %w (%v)", msg, store.ErrConflict, err)
	case unavailable(err):
		return fmt.Errorf("store: %s: %w: %w", msg, store.ErrUnavailable, err)
	}
	return fmt.Errorf("store: %s: %w", msg, err)
}

// unavailable reports whether err says the server could not be reached or did not answer in
// time (no server selected, a network error, a timeout), rather than that the operation was
// wrong.
func unavailable(err error) bool {
	if errors.Is(err, store.ErrUnavailable) {
		return false // already classified
	}
	return mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded)
}

// isDuplicate reports whether err is a unique index violation. MongoDB reports every one as
// a duplicate key error (code 11000). FerretDB v1 does so for inserts but lets an update that
// violates a unique index fail with an InternalError carrying SQLite's message, which is
// recognised here so that updates to a taken slug, email or name are ErrConflict on both.
func isDuplicate(err error) bool {
	if err == nil {
		return false
	}
	return mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// notFound is the error for a write that matched no document.
func notFound(format string, args ...any) error {
	return fmt.Errorf("store: %s: %w", fmt.Sprintf(format, args...), store.ErrNotFound)
}

// conflict is the error for a conditional write whose condition no longer holds.
func conflict(format string, args ...any) error {
	return fmt.Errorf("store: %s: %w", fmt.Sprintf(format, args...), store.ErrConflict)
}

// findOne decodes the document matching filter into a D and converts it.
func findOne[D any, T any](ctx context.Context, c collection, filter bson.D, conv func(D) T, opts ...options.Lister[options.FindOneOptions]) (T, error) {
	var doc D
	if err := c.FindOne(ctx, filter, opts...).Decode(&doc); err != nil {
		var zero T
		return zero, err
	}
	return conv(doc), nil
}

// findAll decodes every document matching filter, converted, in the order opts give.
func findAll[D any, T any](ctx context.Context, c collection, filter bson.D, conv func(D) T, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	var docs []D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		out = append(out, conv(d))
	}
	return out, nil
}

// exists reports whether a document matches filter.
func exists(ctx context.Context, c collection, filter bson.D) (bool, error) {
	err := c.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	}
	return false, err
}

// pageQuery describes one keyset-paginated list: the filter without the cursor, the field the
// list is ordered by, and how a cursor string becomes a value of that field.
type pageQuery struct {
	filter   bson.D
	field    string
	parse    func(string) (any, error) // nil: the cursor is the field's string value
	listOpts store.ListOptions
}

// listPage runs a keyset-paginated query: {field: {$gt: cursor}} sorted by field ascending
// ($lt and descending with Desc), fetching one document more than the page size so
// store.MakePage knows whether a next page exists.
func listPage[D any, T any](ctx context.Context, c collection, q pageQuery, conv func(D) T, cursorOf func(T) string) (store.Page[T], error) {
	limit := q.listOpts.PageSize()
	filter := q.filter
	dir, op := 1, "$gt"
	if q.listOpts.Desc {
		dir, op = -1, "$lt"
	}
	if q.listOpts.Cursor != "" {
		var v any = q.listOpts.Cursor
		if q.parse != nil {
			var err error
			if v, err = q.parse(q.listOpts.Cursor); err != nil {
				return store.Page[T]{}, fmt.Errorf("invalid cursor %q: %w", q.listOpts.Cursor, err)
			}
		}
		filter = append(append(bson.D{}, filter...), bson.E{Key: q.field, Value: bson.D{{Key: op, Value: v}}})
	}
	if filter == nil {
		filter = bson.D{}
	}
	items, err := findAll(ctx, c, filter, conv, options.Find().
		SetSort(bson.D{{Key: q.field, Value: dir}}).
		SetLimit(int64(limit+1)))
	if err != nil {
		return store.Page[T]{}, err
	}
	return store.MakePage(items, limit, cursorOf), nil
}

// distinctIDs returns the _id of every document matching filter.
func distinctIDs(ctx context.Context, c collection, filter bson.D) ([]string, error) {
	type idDoc struct {
		ID string `bson:"_id"`
	}
	return findAll(ctx, c, filter, func(d idDoc) string { return d.ID },
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
}

// deleteOne deletes the document matching filter; none is store.ErrNotFound.
func deleteOne(ctx context.Context, c collection, filter bson.D, what, id string) error {
	res, err := c.DeleteOne(ctx, filter)
	if err != nil {
		return wrap(err, "delete %s %q", what, id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete %s %q", what, id)
	}
	return nil
}

// retryDuplicate runs an upsert again when it fails with a duplicate key error. Two upserts
// of the same new key can both miss the filter and both insert; the unique index refuses the
// second, and running it again finds the first one's document and updates it.
func retryDuplicate(upsert func() error) error {
	var err error
	for range 3 {
		if err = upsert(); !isDuplicate(err) {
			return err
		}
	}
	return err
}
