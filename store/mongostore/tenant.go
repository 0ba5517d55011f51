package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type tenantDoc struct {
	ID        string    `bson:"_id"`
	Slug      string    `bson:"slug"`
	Name      string    `bson:"name"`
	CreatedAt time.Time `bson:"created_at"`
	UpdatedAt time.Time `bson:"updated_at"`
}

func tenantToDoc(t *store.Tenant) tenantDoc {
	return tenantDoc{ID: t.ID, Slug: t.Slug, Name: t.Name, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

func tenantFromDoc(d tenantDoc) store.Tenant {
	return store.Tenant{ID: d.ID, Slug: d.Slug, Name: d.Name, CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt)}
}

// CreateTenant inserts t; a taken slug is store.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t *store.Tenant) error {
	store.PrepareCreate(&t.ID, &t.CreatedAt, &t.UpdatedAt)
	_, err := s.col(colTenants).InsertOne(ctx, tenantToDoc(t))
	return wrap(err, "create tenant %q", t.Slug)
}

// Tenant returns the tenant with id.
func (s *Store) Tenant(ctx context.Context, id string) (store.Tenant, error) {
	t, err := findOne(ctx, s.col(colTenants), bson.D{{Key: "_id", Value: id}}, tenantFromDoc)
	return t, wrap(err, "get tenant %q", id)
}

// TenantBySlug returns the tenant with slug.
func (s *Store) TenantBySlug(ctx context.Context, slug string) (store.Tenant, error) {
	t, err := findOne(ctx, s.col(colTenants), bson.D{{Key: "slug", Value: slug}}, tenantFromDoc)
	return t, wrap(err, "get tenant by slug %q", slug)
}

// ListTenants pages through every tenant by ID.
func (s *Store) ListTenants(ctx context.Context, opts store.ListOptions) (store.Page[store.Tenant], error) {
	p, err := listPage(ctx, s.col(colTenants), pageQuery{field: "_id", listOpts: opts}, tenantFromDoc,
		func(t store.Tenant) string { return t.ID })
	return p, wrap(err, "list tenants")
}

// UpdateTenant saves Slug and Name and sets UpdatedAt.
func (s *Store) UpdateTenant(ctx context.Context, t *store.Tenant) error {
	now := store.Now()
	res, err := s.col(colTenants).UpdateOne(ctx, bson.D{{Key: "_id", Value: t.ID}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "slug", Value: t.Slug},
		{Key: "name", Value: t.Name},
		{Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update tenant %q", t.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update tenant %q", t.ID)
	}
	t.UpdatedAt = now
	return nil
}

// DeleteTenant removes the tenant and every document it owns. Without transactions the
// deletion is not atomic: the tenant's data goes collection by collection, and the tenant
// document last, so a deletion interrupted half-way leaves the tenant visible and a retry
// finishes it.
func (s *Store) DeleteTenant(ctx context.Context, id string) error {
	ok, err := exists(ctx, s.col(colTenants), bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return wrap(err, "delete tenant %q", id)
	}
	if !ok {
		return notFound("delete tenant %q", id)
	}
	for _, name := range tenantCollections {
		if _, err := s.col(name).DeleteMany(ctx, bson.D{{Key: "tenant_id", Value: id}}); err != nil {
			return wrap(err, "delete tenant %q: %s", id, name)
		}
	}
	res, err := s.col(colTenants).DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return wrap(err, "delete tenant %q", id)
	}
	if res.DeletedCount == 0 {
		return notFound("delete tenant %q", id)
	}
	return nil
}

type brokerSettingsDoc struct {
	Mode           string `bson:"mode"`
	URL            string `bson:"url"`
	Username       string `bson:"username"`
	PasswordSealed []byte `bson:"password_sealed"`
	CACertPEM      string `bson:"ca_cert_pem"`
	TopicRoot      string `bson:"topic_root"`
	ClientID       string `bson:"client_id"`
}

type bugsnagSettingsDoc struct {
	APIKeySealed []byte `bson:"api_key_sealed"`
	NotifyURL    string `bson:"notify_url"`
	ReleaseStage string `bson:"release_stage"`
}

// tenantSettingsDoc is keyed by the tenant ID: a tenant has at most one settings document.
type tenantSettingsDoc struct {
	TenantID  string             `bson:"_id"`
	Tenant    string             `bson:"tenant_id"` // the same ID, so tenant-wide deletes find it
	Broker    brokerSettingsDoc  `bson:"broker"`
	Bugsnag   bugsnagSettingsDoc `bson:"bugsnag"`
	Version   int64              `bson:"version"`
	UpdatedAt time.Time          `bson:"updated_at"`
	UpdatedBy string             `bson:"updated_by"`
}

func settingsToDoc(st *store.TenantSettings) tenantSettingsDoc {
	b, g := st.Broker, st.Bugsnag
	return tenantSettingsDoc{
		TenantID: st.TenantID,
		Tenant:   st.TenantID,
		Broker: brokerSettingsDoc{
			Mode: string(b.Mode), URL: b.URL, Username: b.Username, PasswordSealed: b.PasswordSealed,
			CACertPEM: b.CACertPEM, TopicRoot: b.TopicRoot, ClientID: b.ClientID,
		},
		Bugsnag:   bugsnagSettingsDoc{APIKeySealed: g.APIKeySealed, NotifyURL: g.NotifyURL, ReleaseStage: g.ReleaseStage},
		Version:   st.Version,
		UpdatedAt: st.UpdatedAt,
		UpdatedBy: st.UpdatedBy,
	}
}

func settingsFromDoc(d tenantSettingsDoc) store.TenantSettings {
	b, g := d.Broker, d.Bugsnag
	return store.TenantSettings{
		TenantID: d.TenantID,
		Broker: store.BrokerSettings{
			Mode: store.BrokerMode(b.Mode), URL: b.URL, Username: b.Username, PasswordSealed: b.PasswordSealed,
			CACertPEM: b.CACertPEM, TopicRoot: b.TopicRoot, ClientID: b.ClientID,
		},
		Bugsnag:   store.BugsnagSettings{APIKeySealed: g.APIKeySealed, NotifyURL: g.NotifyURL, ReleaseStage: g.ReleaseStage},
		Version:   d.Version,
		UpdatedAt: utc(d.UpdatedAt),
		UpdatedBy: d.UpdatedBy,
	}
}

// TenantSettings returns the saved settings, or store.ErrNotFound when none were saved.
func (s *Store) TenantSettings(ctx context.Context, tenantID string) (store.TenantSettings, error) {
	st, err := findOne(ctx, s.col(colTenantSettings), bson.D{{Key: "_id", Value: tenantID}}, settingsFromDoc)
	return st, wrap(err, "get settings of tenant %q", tenantID)
}

// PutTenantSettings saves st if st.Version is the stored version (0: none saved yet). The first
// save is an insert that the _id makes unique; later saves are one conditional update whose
// filter holds the expected version, so of two concurrent saves exactly one wins.
func (s *Store) PutTenantSettings(ctx context.Context, st *store.TenantSettings) error {
	next := *st
	next.Version = st.Version + 1
	next.UpdatedAt = store.Now()
	doc := settingsToDoc(&next)
	c := s.col(colTenantSettings)
	if st.Version == 0 {
		if _, err := c.InsertOne(ctx, doc); err != nil {
			return wrap(err, "put settings of tenant %q (version 0)", st.TenantID)
		}
	} else {
		res, err := c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: st.TenantID}, {Key: "version", Value: st.Version}}, doc,
			options.Replace().SetUpsert(false))
		if err != nil {
			return wrap(err, "put settings of tenant %q", st.TenantID)
		}
		if res.MatchedCount == 0 {
			return conflict("put settings of tenant %q: version %d is not the stored one", st.TenantID, st.Version)
		}
	}
	st.Version, st.UpdatedAt = next.Version, next.UpdatedAt
	return nil
}
