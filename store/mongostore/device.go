package mongostore

import (
	"context"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

type presenceDoc struct {
	Online     bool      `bson:"online"`
	ChangedAt  time.Time `bson:"changed_at"`
	LastSeenAt time.Time `bson:"last_seen_at"`
}

type metadataDoc struct {
	FirmwareVersion string    `bson:"firmware_version"`
	ProjectName     string    `bson:"project_name"`
	ChipModel       string    `bson:"chip_model"`
	ChipRevision    int       `bson:"chip_revision"`
	IDFVersion      string    `bson:"idf_version"`
	MAC             string    `bson:"mac"`
	IP              string    `bson:"ip"`
	RSSI            int       `bson:"rssi"`
	FreeHeap        int64     `bson:"free_heap"`
	UptimeSeconds   int64     `bson:"uptime_seconds"`
	ResetReason     string    `bson:"reset_reason"`
	ConfigVersion   int64     `bson:"config_version"`
	ProtocolVersion int       `bson:"protocol_version"`
	UpdatedAt       time.Time `bson:"updated_at"`

	// absent in documents written before devices declared limits: 0, none declared
	LimitCommandBytes int64 `bson:"limit_command_bytes"`
	LimitConfigBytes  int64 `bson:"limit_config_bytes"`
}

type configSyncDoc struct {
	DesiredVersion int64     `bson:"desired_version"`
	DesiredHash    string    `bson:"desired_hash"`
	AppliedVersion int64     `bson:"applied_version"`
	State          string    `bson:"state"`
	Error          string    `bson:"error"`
	UpdatedAt      time.Time `bson:"updated_at"`
}

// deviceDoc keeps presence, metadata and config sync as sub-documents, each written by its
// own method with $set on that sub-document only, so writers of different parts never
// overwrite each other.
type deviceDoc struct {
	ID                   string        `bson:"_id"`
	TenantID             string        `bson:"tenant_id"`
	Name                 string        `bson:"name"`
	ProjectID            string        `bson:"project_id"`
	Tags                 []string      `bson:"tags"`
	SecretHash           []byte        `bson:"secret_hash"`
	KeySealed            []byte        `bson:"key_sealed"`
	Disabled             bool          `bson:"disabled"`
	CredentialsRotatedAt time.Time     `bson:"credentials_rotated_at"`
	Presence             presenceDoc   `bson:"presence"`
	Metadata             metadataDoc   `bson:"metadata"`
	ConfigSync           configSyncDoc `bson:"config_sync"`
	CreatedAt            time.Time     `bson:"created_at"`
	UpdatedAt            time.Time     `bson:"updated_at"`
}

func presenceToDoc(p store.Presence) presenceDoc {
	return presenceDoc{Online: p.Online, ChangedAt: store.Timestamp(p.ChangedAt), LastSeenAt: store.Timestamp(p.LastSeenAt)}
}

func metadataToDoc(m store.DeviceMetadata) metadataDoc {
	d := metadataDoc(m)
	d.UpdatedAt = store.Timestamp(m.UpdatedAt)
	return d
}

func configSyncToDoc(c store.ConfigSync) configSyncDoc {
	return configSyncDoc{
		DesiredVersion: c.DesiredVersion, DesiredHash: c.DesiredHash, AppliedVersion: c.AppliedVersion,
		State: string(c.State), Error: c.Error, UpdatedAt: store.Timestamp(c.UpdatedAt),
	}
}

func deviceToDoc(d *store.Device) deviceDoc {
	return deviceDoc{
		ID: d.ID, TenantID: d.TenantID, Name: d.Name, ProjectID: d.ProjectID, Tags: d.Tags,
		SecretHash: d.SecretHash, KeySealed: d.KeySealed, Disabled: d.Disabled,
		CredentialsRotatedAt: store.Timestamp(d.CredentialsRotatedAt),
		Presence:             presenceToDoc(d.Presence),
		Metadata:             metadataToDoc(d.Metadata),
		ConfigSync:           configSyncToDoc(d.ConfigSync),
		CreatedAt:            d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
}

func deviceFromDoc(d deviceDoc) store.Device {
	m := store.DeviceMetadata(d.Metadata)
	m.UpdatedAt = utc(m.UpdatedAt)
	return store.Device{
		ID: d.ID, TenantID: d.TenantID, Name: d.Name, ProjectID: d.ProjectID, Tags: d.Tags,
		SecretHash: d.SecretHash, KeySealed: d.KeySealed, Disabled: d.Disabled,
		CredentialsRotatedAt: utc(d.CredentialsRotatedAt),
		Presence: store.Presence{
			Online: d.Presence.Online, ChangedAt: utc(d.Presence.ChangedAt), LastSeenAt: utc(d.Presence.LastSeenAt),
		},
		Metadata: m,
		ConfigSync: store.ConfigSync{
			DesiredVersion: d.ConfigSync.DesiredVersion, DesiredHash: d.ConfigSync.DesiredHash,
			AppliedVersion: d.ConfigSync.AppliedVersion, State: store.ConfigSyncState(d.ConfigSync.State),
			Error: d.ConfigSync.Error, UpdatedAt: utc(d.ConfigSync.UpdatedAt),
		},
		CreatedAt: utc(d.CreatedAt), UpdatedAt: utc(d.UpdatedAt),
	}
}

// CreateDevice inserts d. Device IDs are the documents' _id, unique across tenants as the
// broker needs; a taken ID is store.ErrConflict.
func (s *Store) CreateDevice(ctx context.Context, d *store.Device) error {
	store.PrepareCreate(&d.ID, &d.CreatedAt, &d.UpdatedAt)
	doc := deviceToDoc(d)
	_, err := s.col(colDevices).InsertOne(ctx, doc)
	if err != nil {
		return wrap(err, "create device %q", d.ID)
	}
	*d = deviceFromDoc(doc) // the normalised times, as a read would return them
	return nil
}

// Device returns one of a tenant's devices.
func (s *Store) Device(ctx context.Context, tenantID, id string) (store.Device, error) {
	d, err := findOne(ctx, s.col(colDevices), tenantKey(tenantID, id), deviceFromDoc)
	return d, wrap(err, "get device %q", id)
}

// deviceFilter builds the query for a tenant's devices matching f.
func deviceFilter(tenantID string, f store.DeviceFilter) bson.D {
	q := bson.D{{Key: "tenant_id", Value: tenantID}}
	if f.ProjectID != "" {
		q = append(q, bson.E{Key: "project_id", Value: f.ProjectID})
	}
	if f.Tag != "" {
		q = append(q, bson.E{Key: "tags", Value: f.Tag}) // matches an element of the array
	}
	if f.Online != nil {
		q = append(q, bson.E{Key: "presence.online", Value: *f.Online})
	}
	if f.FirmwareVersion != "" {
		q = append(q, bson.E{Key: "metadata.firmware_version", Value: f.FirmwareVersion})
	}
	if f.Disabled != nil {
		q = append(q, bson.E{Key: "disabled", Value: *f.Disabled})
	}
	if len(f.IDs) > 0 {
		q = append(q, bson.E{Key: "_id", Value: bson.D{{Key: "$in", Value: f.IDs}}})
	}
	if len(f.ConfigStates) > 0 {
		states := make(bson.A, len(f.ConfigStates))
		for i, st := range f.ConfigStates {
			states[i] = string(st)
		}
		q = append(q, bson.E{Key: "config_sync.state", Value: bson.D{{Key: "$in", Value: states}}})
	}
	if f.Search != "" {
		quoted := regexp.QuoteMeta(f.Search)
		q = append(q, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "name", Value: bson.Regex{Pattern: quoted, Options: "i"}}},
			bson.D{{Key: "_id", Value: bson.Regex{Pattern: "^" + quoted}}},
		}})
	}
	return q
}

// ListDevices pages through a tenant's devices matching f, by ID.
func (s *Store) ListDevices(ctx context.Context, tenantID string, f store.DeviceFilter, opts store.ListOptions) (store.Page[store.Device], error) {
	if !f.Sort.Keyset() {
		field, ok := deviceSortFields[f.Sort.Column]
		if !ok {
			return store.Page[store.Device]{}, store.Invalid("sort", "unknown column")
		}
		offset, err := store.ParseOffsetCursor(opts.Cursor)
		if err != nil {
			return store.Page[store.Device]{}, wrap(err, "list devices of tenant %q", tenantID)
		}
		dir := 1
		if f.Sort.Desc {
			dir = -1
		}
		items, err := findAll(ctx, s.col(colDevices), deviceFilter(tenantID, f), deviceFromDoc, options.Find().
			SetSort(bson.D{{Key: field, Value: dir}, {Key: "_id", Value: dir}}).
			SetSkip(int64(offset)).SetLimit(int64(opts.PageSize()+1)))
		if err != nil {
			return store.Page[store.Device]{}, wrap(err, "list devices of tenant %q", tenantID)
		}
		return store.OffsetPage(items, offset, opts.PageSize()), nil
	}
	opts.Desc = opts.Desc || f.Sort.Desc
	p, err := listPage(ctx, s.col(colDevices),
		pageQuery{filter: deviceFilter(tenantID, f), field: "_id", listOpts: opts},
		deviceFromDoc, func(d store.Device) string { return d.ID })
	return p, wrap(err, "list devices of tenant %q", tenantID)
}

// deviceSortFields maps store.DeviceSort columns (other than ID) to fields of a device.
var deviceSortFields = map[string]string{
	store.SortDeviceName:     "name",
	store.SortDeviceStatus:   "presence.online",
	store.SortDeviceProject:  "project_id",
	store.SortDeviceFirmware: "metadata.firmware_version",
	store.SortDeviceTags:     "tags",
	store.SortDeviceLastSeen: "presence.last_seen_at",
	store.SortDeviceCreated:  "created_at",
}

// CountDevices counts a tenant's devices matching f.
func (s *Store) CountDevices(ctx context.Context, tenantID string, f store.DeviceFilter) (int64, error) {
	n, err := s.col(colDevices).CountDocuments(ctx, deviceFilter(tenantID, f))
	return n, wrap(err, "count devices of tenant %q", tenantID)
}

// DeviceCounts sums up a tenant's devices with one $group aggregation.
func (s *Store) DeviceCounts(ctx context.Context, tenantID string) (store.DeviceCounts, error) {
	var c store.DeviceCounts
	cur, err := s.col(colDevices).Aggregate(ctx, mongo.Pipeline{
		{{Key: "$match", Value: bson.D{{Key: "tenant_id", Value: tenantID}}}},
		{{Key: "$group", Value: bson.D{
			{Key: "_id", Value: bson.D{{Key: "fw", Value: "$metadata.firmware_version"}, {Key: "online", Value: "$presence.online"}, {Key: "disabled", Value: "$disabled"}}},
			{Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}},
		}}},
	})
	if err != nil {
		return c, wrap(err, "count devices of tenant %q", tenantID)
	}
	var rows []struct {
		Key struct {
			Firmware string `bson:"fw"`
			Online   bool   `bson:"online"`
			Disabled bool   `bson:"disabled"`
		} `bson:"_id"`
		N int64 `bson:"n"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return c, wrap(err, "count devices of tenant %q", tenantID)
	}
	for _, r := range rows {
		c.Add(r.Key.Firmware, r.Key.Online, r.Key.Disabled, r.N)
	}
	return c, nil
}

// UpdateDevice saves Name, ProjectID, Tags and Disabled and sets UpdatedAt.
func (s *Store) UpdateDevice(ctx context.Context, d *store.Device) error {
	now := store.Now()
	res, err := s.col(colDevices).UpdateOne(ctx, tenantKey(d.TenantID, d.ID), bson.D{{Key: "$set", Value: bson.D{
		{Key: "name", Value: d.Name},
		{Key: "project_id", Value: d.ProjectID},
		{Key: "tags", Value: d.Tags},
		{Key: "disabled", Value: d.Disabled},
		{Key: "updated_at", Value: now},
	}}})
	if err != nil {
		return wrap(err, "update device %q", d.ID)
	}
	if res.MatchedCount == 0 {
		return notFound("update device %q", d.ID)
	}
	d.UpdatedAt = now
	return nil
}

// DeleteDevice removes the device with the records that only make sense with it: its config
// entries and versions, its commands, its rollout states and its error counts. Its error
// reports stay in their groups. The device document goes first, so the broker refuses the
// device at once; the rest follows.
func (s *Store) DeleteDevice(ctx context.Context, tenantID, id string) error {
	if err := deleteOne(ctx, s.col(colDevices), tenantKey(tenantID, id), "device", id); err != nil {
		return err
	}
	owned := bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "device_id", Value: id}}
	for _, name := range []string{colConfigVersions, colCommands, colRolloutDevices, colErrorGroupDevices, colDeviceSamples} {
		if _, err := s.col(name).DeleteMany(ctx, owned); err != nil {
			return wrap(err, "delete device %q: %s", id, name)
		}
	}
	_, err := s.col(colConfigSets).DeleteMany(ctx, bson.D{
		{Key: "tenant_id", Value: tenantID},
		{Key: "scope", Value: string(store.ScopeDevice)},
		{Key: "scope_id", Value: id},
	})
	return wrap(err, "delete device %q: config entries", id)
}

// updateDevice applies update to one of a tenant's devices; no such device is ErrNotFound.
func (s *Store) updateDevice(ctx context.Context, tenantID, id, what string, update bson.D) error {
	res, err := s.col(colDevices).UpdateOne(ctx, tenantKey(tenantID, id), update)
	if err != nil {
		return wrap(err, "set %s of device %q", what, id)
	}
	if res.MatchedCount == 0 {
		return notFound("set %s of device %q", what, id)
	}
	return nil
}

// SetDeviceCredentials replaces the secret hash and the sealed key.
func (s *Store) SetDeviceCredentials(ctx context.Context, tenantID, id string, secretHash, keySealed []byte, at time.Time) error {
	return s.updateDevice(ctx, tenantID, id, "credentials", bson.D{{Key: "$set", Value: bson.D{
		{Key: "secret_hash", Value: secretHash},
		{Key: "key_sealed", Value: keySealed},
		{Key: "credentials_rotated_at", Value: orNow(at)},
	}}})
}

// SetDevicePresence records p unless the stored presence changed later than p.ChangedAt. The
// order check is part of the update's filter, so two reports racing apply in ChangedAt order
// whatever order they arrive in; LastSeenAt only moves forward ($max), so a presence report
// never undoes a later TouchDevices.
func (s *Store) SetDevicePresence(ctx context.Context, tenantID, id string, p store.Presence) error {
	doc := presenceToDoc(p)
	filter := append(tenantKey(tenantID, id), bson.E{Key: "presence.changed_at", Value: bson.D{{Key: "$lte", Value: doc.ChangedAt}}})
	res, err := s.col(colDevices).UpdateOne(ctx, filter, bson.D{
		{Key: "$set", Value: bson.D{
			{Key: "presence.online", Value: doc.Online},
			{Key: "presence.changed_at", Value: doc.ChangedAt},
		}},
		{Key: "$max", Value: bson.D{{Key: "presence.last_seen_at", Value: doc.LastSeenAt}}},
	})
	if err != nil {
		return wrap(err, "set presence of device %q", id)
	}
	if res.MatchedCount == 1 {
		return nil
	}
	ok, err := exists(ctx, s.col(colDevices), tenantKey(tenantID, id))
	if err != nil {
		return wrap(err, "set presence of device %q", id)
	}
	if !ok {
		return notFound("set presence of device %q", id)
	}
	return nil // a newer presence is stored: this report is stale and ignored
}

// TouchDevices moves LastSeenAt forward (never back) for the tenant's devices among ids;
// unknown IDs are ignored.
func (s *Store) TouchDevices(ctx context.Context, tenantID string, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.col(colDevices).UpdateMany(ctx,
		bson.D{{Key: "tenant_id", Value: tenantID}, {Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "presence.last_seen_at", Value: orNow(at)}}}})
	return wrap(err, "touch %d devices of tenant %q", len(ids), tenantID)
}

// SetDeviceMetadata replaces the metadata sub-document only.
func (s *Store) SetDeviceMetadata(ctx context.Context, tenantID, id string, m store.DeviceMetadata) error {
	return s.updateDevice(ctx, tenantID, id, "metadata",
		bson.D{{Key: "$set", Value: bson.D{{Key: "metadata", Value: metadataToDoc(m)}}}})
}

// SetDeviceConfigSync replaces the config sync sub-document only.
func (s *Store) SetDeviceConfigSync(ctx context.Context, tenantID, id string, c store.ConfigSync) error {
	return s.updateDevice(ctx, tenantID, id, "config sync",
		bson.D{{Key: "$set", Value: bson.D{{Key: "config_sync", Value: configSyncToDoc(c)}}}})
}

// deviceAuthDoc is the projection DeviceAuth reads.
type deviceAuthDoc struct {
	ID         string `bson:"_id"`
	TenantID   string `bson:"tenant_id"`
	SecretHash []byte `bson:"secret_hash"`
	Disabled   bool   `bson:"disabled"`
}

// DeviceAuth returns what the broker needs to authenticate deviceID, with its tenant.
func (s *Store) DeviceAuth(ctx context.Context, deviceID string) (store.DeviceAuth, error) {
	var d deviceAuthDoc
	err := s.col(colDevices).FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}}).Decode(&d)
	if err != nil {
		return store.DeviceAuth{}, wrap(err, "get credentials of device %q", deviceID)
	}
	return store.DeviceAuth{DeviceID: d.ID, TenantID: d.TenantID, SecretHash: d.SecretHash, Disabled: d.Disabled}, nil
}
