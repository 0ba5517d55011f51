package mongostore

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/testsvc/ferretdb"
)

// openStore returns a store on a fresh database of the shared FerretDB server, migrated
// unless the caller asks for an empty one.
func openStore(t *testing.T, migrate bool) *Store {
	t.Helper()
	s, err := Open(t.Context(), ferretdb.Start(t), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if migrate {
		if _, err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}
	return s
}

func TestMigrateIsIdempotentAndRecordsVersion(t *testing.T) {
	t.Parallel()
	s := openStore(t, false)
	ctx := t.Context()

	if v, err := s.SchemaVersion(ctx); err != nil || v != 0 {
		t.Fatalf("SchemaVersion of an empty database = %d, %v; want 0, nil", v, err)
	}
	for i := range 2 {
		v, err := s.Migrate(ctx)
		if err != nil || v != SchemaVersionLatest() {
			t.Fatalf("Migrate #%d = %d, %v; want %d, nil", i+1, v, err, SchemaVersionLatest())
		}
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != SchemaVersionLatest() {
		t.Fatalf("SchemaVersion after Migrate = %d, %v; want %d", v, err, SchemaVersionLatest())
	}
	// A replica that read an older version before another recorded the steps runs them again.
	for _, m := range migrations {
		if err := m.up(ctx, s.db); err != nil {
			t.Fatalf("running step %d (%s) on a migrated database: %v", m.version, m.name, err)
		}
	}
	n, err := s.col(colSchemaMigrations).CountDocuments(ctx, bson.D{})
	if err != nil || n != int64(len(migrations)) {
		t.Fatalf("schema_migrations holds %d documents (%v), want one per step (%d)", n, err, len(migrations))
	}

	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatalf("ListCollectionNames: %v", err)
	}
	for _, want := range slices.Concat(initialCollections, []string{colLoginLimits, colConfigSets}) {
		if want == colConfigEntries {
			if contains(names, want) {
				t.Errorf("collection %s still there after step 4 moved it to %s", want, colConfigSets)
			}
			continue
		}
		if !contains(names, want) {
			t.Errorf("collection %s missing after Migrate; have %v", want, names)
		}
	}
	for _, ix := range slices.Concat(initialIndexes, loginLimitIndexes, configSetIndexes, errorReportTimeIndexes, errorReportReceivedIndex) {
		if ix.collection == colConfigEntries {
			continue
		}
		specs, err := s.db.Collection(ix.collection).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatalf("list indexes of %s: %v", ix.collection, err)
		}
		found := false
		for _, spec := range specs {
			if spec.Name == ix.name {
				found = true
				if unique := spec.Unique != nil && *spec.Unique; unique != ix.unique {
					t.Errorf("index %s.%s unique = %v, want %v", ix.collection, ix.name, unique, ix.unique)
				}
			}
		}
		if !found {
			t.Errorf("index %s.%s missing after Migrate", ix.collection, ix.name)
		}
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	s := openStore(t, false)
	ctx := t.Context()
	newer := SchemaVersionLatest() + 1
	if _, err := s.col(colSchemaMigrations).InsertOne(ctx, schemaMigrationDoc{Version: newer, Name: "from the future", AppliedAt: store.Now()}); err != nil {
		t.Fatalf("insert newer version: %v", err)
	}

	v, err := s.Migrate(ctx)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Migrate on version %d = %d, %v; want ErrSchemaTooNew", newer, v, err)
	}
	if got, _ := s.SchemaVersion(ctx); got != newer {
		t.Errorf("SchemaVersion = %d, want %d", got, newer)
	}
	names, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatalf("ListCollectionNames: %v", err)
	}
	if len(names) != 1 || names[0] != colSchemaMigrations {
		t.Errorf("Migrate touched a newer database: collections %v, want only %s", names, colSchemaMigrations)
	}
}

func TestUniqueIndexesGiveConflict(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()

	tn := store.Tenant{Slug: "acme", Name: "Acme"}
	mustDo(t, s.CreateTenant(ctx, &tn), "CreateTenant")
	u := store.User{Email: "ada@example.com"}
	mustDo(t, s.CreateUser(ctx, &u), "CreateUser")
	p := store.Project{TenantID: tn.ID, Name: "thermostat"}
	mustDo(t, s.CreateProject(ctx, &p), "CreateProject")
	d := store.Device{TenantID: tn.ID, Name: "kitchen"}
	mustDo(t, s.CreateDevice(ctx, &d), "CreateDevice")
	hash := []byte("0123456789abcdef0123456789abcdef")

	// Each create succeeds once (the records above exist already for the ID cases) and is
	// refused the second time.
	tests := []struct {
		name   string
		create func() error
		first  bool // run once before the checked attempt
	}{
		{"tenant slug", func() error { return s.CreateTenant(ctx, &store.Tenant{Slug: "acme"}) }, false},
		{"tenant ID", func() error { return s.CreateTenant(ctx, &store.Tenant{ID: tn.ID, Slug: "other"}) }, false},
		{"user email", func() error { return s.CreateUser(ctx, &store.User{Email: "ada@example.com"}) }, false},
		{"membership", func() error {
			return s.CreateMembership(ctx, &store.Membership{TenantID: tn.ID, UserID: u.ID, Role: store.RoleViewer})
		}, true},
		{"identity", func() error {
			return s.CreateIdentity(ctx, &store.Identity{UserID: u.ID, Provider: "github", Subject: "42"})
		}, true},
		{"session token", func() error { return s.CreateSession(ctx, &store.Session{UserID: u.ID, TokenHash: hash}) }, true},
		{"API token", func() error { return s.CreateAPIToken(ctx, &store.APIToken{TenantID: tn.ID, Hash: hash}) }, true},
		{"invitation token", func() error {
			return s.CreateInvitation(ctx, &store.Invitation{TenantID: tn.ID, Email: "bob@example.com", TokenHash: hash})
		}, true},
		{"one-time token", func() error {
			return s.CreateOneTimeToken(ctx, &store.OneTimeToken{Kind: store.TokenSetup, Hash: hash})
		}, true},
		{"project name", func() error { return s.CreateProject(ctx, &store.Project{TenantID: tn.ID, Name: "thermostat"}) }, false},
		{"release version", func() error {
			return s.CreateRelease(ctx, &store.Release{TenantID: tn.ID, ProjectID: p.ID, Version: "v-1.0.0"})
		}, true},
		{"device ID", func() error { return s.CreateDevice(ctx, &store.Device{ID: d.ID, TenantID: tn.ID}) }, false},
		{"config entry", func() error {
			return s.PutConfigEntries(ctx, []store.ConfigEntry{{TenantID: tn.ID, Scope: store.ScopeDevice, ScopeID: d.ID, Key: "k", Type: store.TypeInt, Value: "1"}})
		}, true},
		{"config version", func() error {
			return s.CreateConfigVersion(ctx, &store.ConfigVersion{TenantID: tn.ID, DeviceID: d.ID, Version: 1})
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.first {
				mustDo(t, tt.create(), "first create")
			}
			if err := tt.create(); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("duplicate create = %v, want ErrConflict", err)
			}
		})
	}

	// The same key in another tenant is no conflict.
	other := store.Tenant{Slug: "other-tenant"}
	mustDo(t, s.CreateTenant(ctx, &other), "CreateTenant")
	mustDo(t, s.CreateProject(ctx, &store.Project{TenantID: other.ID, Name: "thermostat"}), "CreateProject in another tenant")
}

func TestTimestampsRoundTripInUTC(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()
	zone := time.FixedZone("minus-three-thirty", -(3*3600 + 1800))
	in := time.Date(2031, 2, 3, 4, 5, 6, 789_123_456, zone)
	want := in.Truncate(time.Millisecond)

	tn := store.Tenant{Slug: "zone", CreatedAt: in, UpdatedAt: in}
	mustDo(t, s.CreateTenant(ctx, &tn), "CreateTenant")
	last := in.Add(time.Hour)
	u := store.User{Email: "zone@example.com", CreatedAt: in, LastLoginAt: &last}
	mustDo(t, s.CreateUser(ctx, &u), "CreateUser")
	d := store.Device{TenantID: tn.ID, CreatedAt: in}
	mustDo(t, s.CreateDevice(ctx, &d), "CreateDevice")
	mustDo(t, s.SetDevicePresence(ctx, tn.ID, d.ID, store.Presence{Online: true, ChangedAt: in, LastSeenAt: in}), "SetDevicePresence")

	gotT, err := s.Tenant(ctx, tn.ID)
	mustDo(t, err, "Tenant")
	gotU, err := s.User(ctx, u.ID)
	mustDo(t, err, "User")
	gotD, err := s.Device(ctx, tn.ID, d.ID)
	mustDo(t, err, "Device")

	for _, c := range []struct {
		what      string
		got, want time.Time
	}{
		{"tenant created_at", gotT.CreatedAt, want},
		{"tenant updated_at", gotT.UpdatedAt, want},
		{"user created_at", gotU.CreatedAt, want},
		{"user last_login_at", *gotU.LastLoginAt, last.Truncate(time.Millisecond)},
		{"device presence changed_at", gotD.Presence.ChangedAt, want},
		{"device presence last_seen_at", gotD.Presence.LastSeenAt, want},
		{"device created_at", gotD.CreatedAt, want},
	} {
		if !c.got.Equal(c.want) || c.got.Location() != time.UTC {
			t.Errorf("%s = %s (%s), want %s in UTC", c.what, c.got.Format(time.RFC3339Nano), c.got.Location(), c.want.UTC().Format(time.RFC3339Nano))
		}
	}
	if !gotD.Metadata.UpdatedAt.IsZero() || !gotD.CredentialsRotatedAt.IsZero() {
		t.Errorf("zero times came back as %v and %v, want zero", gotD.Metadata.UpdatedAt, gotD.CredentialsRotatedAt)
	}
	if u.LastLoginAt == nil || gotU.LastLoginAt == nil {
		t.Fatal("LastLoginAt lost")
	}
}

func TestOpenErrorsAreClearRedactedAndFast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want string
	}{
		{"malformed", "mongodb://ada:s3cr3t@[::1/espadmin", "parse URL"},
		{"wrong scheme", "postgres://ada:s3cr3t@127.0.0.1/espadmin", "parse URL"},
		{"unknown option", "mongodb://ada:s3cr3t@127.0.0.1/espadmin?w=banana&journal=maybe", "parse URL"},
		{"unreachable", "mongodb://ada:s3cr3t@127.0.0.1:1/espadmin?serverSelectionTimeoutMS=300&connectTimeoutMS=300", "reach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s, err := Open(t.Context(), tt.url, Options{})
			elapsed := time.Since(start)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded", tt.url)
			}
			msg := err.Error()
			if strings.Contains(msg, "s3cr3t") {
				t.Errorf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, "ada:xxxxx@") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q does not name the redacted URL and %q", msg, tt.want)
			}
			if elapsed > 5*time.Second {
				t.Errorf("Open took %v to fail", elapsed)
			}
		})
	}
}

func TestOpenUsesDatabaseFromURL(t *testing.T) {
	t.Parallel()
	raw := ferretdb.Start(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{u.Path, strings.TrimPrefix(u.Path, "/")},
		{"/", DefaultDatabase},
		{"", DefaultDatabase},
	} {
		v := *u
		v.Path = tt.path
		s, err := Open(t.Context(), v.String(), Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", v.String(), err)
		}
		if got := s.Database(); got != tt.want {
			t.Errorf("Open(%q).Database() = %q, want %q", v.String(), got, tt.want)
		}
		if s.Backend() != "mongodb" {
			t.Errorf("Backend() = %q", s.Backend())
		}
		mustDo(t, s.Ping(t.Context()), "Ping")
		mustDo(t, s.Close(), "Close")
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"mongodb://ada:pw@host/db":                   "mongodb://ada:xxxxx@host/db",
		"mongodb://ada:p%40w@h1:1,h2:2/db?tls=true":  "mongodb://ada:xxxxx@h1:1,h2:2/db?tls=true",
		"mongodb+srv://ada:pw@cluster.example.net":   "mongodb+srv://ada:xxxxx@cluster.example.net",
		"mongodb://ada@host/db":                      "mongodb://ada@host/db",
		"mongodb://host/db?authSource=admin&x=a:b@c": "mongodb://host/db?authSource=admin&x=a:b@c",
		"not a url":             "not a url",
		"mongodb://ada:pw@[bad": "mongodb://ada:xxxxx@[bad",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The remaining tests exercise what the backend builds from single-document atomic updates
// instead of transactions, with real concurrency against the server.

// racers runs the calls of a race test. Where the server isolates concurrent updates of one
// document (MongoDB) each call gets its own goroutine; FerretDB v1, the server these tests
// embed, does not (a documented limit, see the package comment), so there the calls run one
// after another: every call's outcome is still checked, only not their race.
type racers struct {
	wg     sync.WaitGroup
	inline bool
}

func newRacers(t *testing.T, s *Store) *racers {
	t.Helper()
	r := &racers{inline: !s.IsolatedUpdates()}
	if r.inline {
		t.Log("FerretDB does not isolate concurrent updates of one document: calls run one after another")
	}
	return r
}

// Go runs f, concurrently where the server allows it.
func (r *racers) Go(f func()) {
	if r.inline {
		f()
		return
	}
	r.wg.Go(f)
}

// Wait waits for every call.
func (r *racers) Wait() { r.wg.Wait() }

func TestRecordErrorLosesNoCountUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()
	tn := store.Tenant{Slug: "errors"}
	mustDo(t, s.CreateTenant(ctx, &tn), "CreateTenant")
	devices := []string{store.NewID(), store.NewID()}
	const perDevice = 15
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	wg := newRacers(t, s)
	errs := make(chan error, len(devices)*perDevice)
	for di, dev := range devices {
		for i := range perDevice {
			wg.Go(func() {
				r := store.ErrorReport{
					TenantID: tn.ID, DeviceID: dev, Fingerprint: "fp-1", Message: "Guru Meditation", Type: "panic",
					ReceivedAt: base.Add(time.Duration(di*perDevice+i) * time.Second),
				}
				if _, err := s.RecordError(ctx, &r); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("RecordError: %v", err)
	}

	groups, err := s.ListErrorGroups(ctx, tn.ID, store.ErrorGroupFilter{}, store.ListOptions{})
	mustDo(t, err, "ListErrorGroups")
	if len(groups.Items) != 1 {
		t.Fatalf("%d groups, want 1", len(groups.Items))
	}
	g := groups.Items[0]
	last := base.Add(time.Duration(len(devices)*perDevice-1) * time.Second)
	if g.Count != int64(len(devices)*perDevice) || !g.FirstSeen.Equal(base) || !g.LastSeen.Equal(last) {
		t.Errorf("group count %d first %v last %v; want %d, %v, %v", g.Count, g.FirstSeen, g.LastSeen, len(devices)*perDevice, base, last)
	}
	per, err := s.ErrorGroupDevices(ctx, tn.ID, g.ID)
	mustDo(t, err, "ErrorGroupDevices")
	if len(per) != len(devices) {
		t.Fatalf("%d per-device counts, want %d", len(per), len(devices))
	}
	for _, p := range per {
		if p.Count != perDevice {
			t.Errorf("device %s count %d, want %d", p.DeviceID, p.Count, perDevice)
		}
	}
	reports, err := s.ListErrorReports(ctx, tn.ID, g.ID, "", store.ListOptions{Limit: store.MaxPageSize})
	mustDo(t, err, "ListErrorReports")
	if len(reports.Items) != len(devices)*perDevice {
		t.Errorf("%d reports, want %d", len(reports.Items), len(devices)*perDevice)
	}
}

func TestTransitionCommandAppliesOnceUnderConcurrency(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()
	c := store.Command{TenantID: "t1", DeviceID: "d1", Name: "restart", State: store.CommandDelivered, ExpiresAt: store.Now().Add(time.Hour)}
	mustDo(t, s.CreateCommand(ctx, &c), "CreateCommand")

	const racers = 8
	wg := newRacers(t, s)
	results := make(chan error, racers)
	for i := range racers {
		wg.Go(func() {
			_, err := s.TransitionCommand(ctx, "t1", c.ID, store.CommandTransition{
				From: []store.CommandState{store.CommandDelivered}, To: store.CommandSucceeded, Result: fmt.Sprintf(`{"n":%d}`, i),
			})
			results <- err
		})
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("TransitionCommand: %v, want nil or ErrConflict", err)
		}
	}
	if won != 1 {
		t.Errorf("%d transitions applied, want exactly 1", won)
	}
}

func TestPutConfigEntriesRefusesStaleBatchAndRacesSafely(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()
	entry := func(key, value string, version int64) store.ConfigEntry {
		return store.ConfigEntry{TenantID: "t1", Scope: store.ScopeDevice, ScopeID: "d1", Key: key, Type: store.TypeString, Value: value, Version: version}
	}
	first := []store.ConfigEntry{entry("a", "1", 0), entry("b", "1", 0)}
	mustDo(t, s.PutConfigEntries(ctx, first), "PutConfigEntries")
	if first[0].Version != 1 || first[1].Version != 1 {
		t.Fatalf("versions after first put = %d, %d; want 1, 1", first[0].Version, first[1].Version)
	}

	// A batch with one stale version writes nothing, not even its new key.
	stale := []store.ConfigEntry{entry("a", "2", 1), entry("b", "2", 0), entry("c", "2", 0)}
	if err := s.PutConfigEntries(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale batch = %v, want ErrConflict", err)
	}
	got, err := s.ConfigEntries(ctx, "t1", store.ScopeDevice, "d1")
	mustDo(t, err, "ConfigEntries")
	if len(got) != 2 || got[0].Value != "1" || got[1].Value != "1" || got[0].Version != 1 {
		t.Fatalf("after a refused batch the entries are %+v", got)
	}

	// Writers racing with the same expected versions: exactly one batch wins, whole.
	const racers = 6
	var wg sync.WaitGroup
	results := make(chan error, racers)
	for i := range racers {
		wg.Go(func() {
			v := fmt.Sprint(10 + i)
			results <- s.PutConfigEntries(ctx, []store.ConfigEntry{entry("a", v, 1), entry("b", v, 1)})
		})
	}
	wg.Wait()
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("PutConfigEntries: %v", err)
		}
	}
	got, err = s.ConfigEntries(ctx, "t1", store.ScopeDevice, "d1")
	mustDo(t, err, "ConfigEntries")
	if won != 1 || got[0].Value != got[1].Value || got[0].Version != 2 || got[1].Version != 2 {
		t.Errorf("%d batches won; entries %+v; want one winner whose values both stand at version 2", won, got)
	}
}

func TestDevicePartsWrittenConcurrentlyLoseNothing(t *testing.T) {
	t.Parallel()
	s := openStore(t, true)
	ctx := t.Context()
	d := store.Device{TenantID: "t1", Name: "porch"}
	mustDo(t, s.CreateDevice(ctx, &d), "CreateDevice")
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	const rounds = 20
	wg := newRacers(t, s)
	errs := make(chan error, 3*rounds)
	for i := range rounds {
		wg.Go(func() {
			errs <- s.SetDevicePresence(ctx, "t1", d.ID, store.Presence{Online: i%2 == 0, ChangedAt: base.Add(time.Duration(i) * time.Second), LastSeenAt: base.Add(time.Duration(i) * time.Second)})
		})
		wg.Go(func() {
			errs <- s.SetDeviceMetadata(ctx, "t1", d.ID, store.DeviceMetadata{FirmwareVersion: "v-1.0.0", FreeHeap: int64(i), UpdatedAt: base})
		})
		wg.Go(func() {
			errs <- s.SetDeviceConfigSync(ctx, "t1", d.ID, store.ConfigSync{DesiredVersion: 3, State: store.ConfigPending, UpdatedAt: base})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent write: %v", err)
		}
	}
	got, err := s.Device(ctx, "t1", d.ID)
	mustDo(t, err, "Device")
	newest := base.Add((rounds - 1) * time.Second)
	if !got.Presence.ChangedAt.Equal(newest) || got.Presence.Online != ((rounds-1)%2 == 0) || !got.Presence.LastSeenAt.Equal(newest) {
		t.Errorf("presence %+v, want the newest report (changed %v)", got.Presence, newest)
	}
	if got.Metadata.FirmwareVersion != "v-1.0.0" || got.ConfigSync.DesiredVersion != 3 || got.Name != "porch" {
		t.Errorf("a writer lost another's fields: %+v", got)
	}
}

func mustDo(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestMigrateConfigSets runs step 4 on entries stored one document per key, as the earlier steps
// left them, and checks that every scope reads back whole and writes on top of it.
func TestMigrateConfigSets(t *testing.T) {
	t.Parallel()
	s := openStore(t, false)
	ctx := t.Context()
	for _, m := range migrations[:2] {
		if err := m.up(ctx, s.db); err != nil {
			t.Fatalf("step %d: %v", m.version, err)
		}
		if _, err := s.col(colSchemaMigrations).InsertOne(ctx, schemaMigrationDoc{Version: m.version, Name: m.name, AppliedAt: store.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	at := store.Timestamp(time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC))
	legacy := []legacyConfigEntryDoc{
		{"t1", "device", "d1", configEntryDoc{Key: "b", Type: "int", Value: "2", Version: 3, UpdatedBy: "u", UpdatedAt: at}},
		{"t1", "device", "d1", configEntryDoc{Key: "a", Type: "string", Value: `"x"`, Version: 1, UpdatedBy: "u", UpdatedAt: at}},
		{"t1", "project", "p1", configEntryDoc{Key: "a", Type: "bool", Value: "true", Secret: true, ValueSealed: []byte{1, 2}, Version: 2, UpdatedAt: at}},
		{"t2", "device", "d1", configEntryDoc{Key: "c", Type: "float", Value: "1.5", Version: 7, UpdatedAt: at}},
	}
	for _, d := range legacy {
		if _, err := s.db.Collection(colConfigEntries).InsertOne(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Migrate(ctx); err != nil || v != SchemaVersionLatest() {
		t.Fatalf("Migrate = %d, %v", v, err)
	}
	scopes := map[[3]string][]string{}
	for _, d := range legacy {
		k := [3]string{d.TenantID, d.Scope, d.ScopeID}
		scopes[k] = append(scopes[k], d.Entry.Key)
	}
	for k := range scopes {
		es, err := s.ConfigEntries(ctx, k[0], store.ConfigScope(k[1]), k[2])
		if err != nil {
			t.Fatal(err)
		}
		var want []store.ConfigEntry
		for _, d := range legacy {
			if d.TenantID == k[0] && d.Scope == k[1] && d.ScopeID == k[2] {
				want = append(want, configSetDoc{TenantID: d.TenantID, Scope: d.Scope, ScopeID: d.ScopeID}.entry(d.Entry))
			}
		}
		slices.SortFunc(want, func(a, b store.ConfigEntry) int { return strings.Compare(a.Key, b.Key) })
		if fmt.Sprint(es) != fmt.Sprint(want) {
			t.Errorf("entries of %v after step 4 = %+v, want %+v", k, es, want)
		}
	}
	// A stale version is refused, a current one applies on top of the migrated set.
	e, err := s.ConfigEntry(ctx, "t1", store.ScopeDevice, "d1", "b")
	if err != nil {
		t.Fatal(err)
	}
	stale := e
	stale.Version = 2
	if err := s.PutConfigEntries(ctx, []store.ConfigEntry{stale}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutConfigEntries with a stale version after step 4 = %v, want ErrConflict", err)
	}
	e.Value = "5"
	if err := s.PutConfigEntries(ctx, []store.ConfigEntry{e}); err != nil {
		t.Fatal(err)
	}
	es, err := s.ConfigEntries(ctx, "t1", store.ScopeDevice, "d1")
	if err != nil || len(es) != 2 || es[1].Value != "5" || es[1].Version != 4 || es[0].Value != `"x"` {
		t.Errorf("entries after a write on the migrated set = %+v, %v", es, err)
	}
}
