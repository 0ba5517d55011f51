package sqlstore

import (
	"context"
	"errors"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// commandRow is a row of commands. expires_at is NULL for a command that never expires.
type commandRow struct {
	bun.BaseModel `bun:"table:commands"`

	ID          string     `bun:"id"`
	TenantID    string     `bun:"tenant_id"`
	DeviceID    string     `bun:"device_id"`
	Name        string     `bun:"name"`
	Payload     string     `bun:"payload"`
	State       string     `bun:"state"`
	Result      string     `bun:"result"`
	Error       string     `bun:"error"`
	RolloutID   string     `bun:"rollout_id"`
	CreatedBy   string     `bun:"created_by"`
	CreatedAt   time.Time  `bun:"created_at"`
	ExpiresAt   time.Time  `bun:"expires_at,nullzero"`
	DeliveredAt *time.Time `bun:"delivered_at"`
	CompletedAt *time.Time `bun:"completed_at"`
	UpdatedAt   time.Time  `bun:"updated_at"`
}

func (r commandRow) domain() store.Command {
	return store.Command{
		ID: r.ID, TenantID: r.TenantID, DeviceID: r.DeviceID, Name: r.Name, Payload: r.Payload,
		State: store.CommandState(r.State), Result: r.Result, Error: r.Error, RolloutID: r.RolloutID,
		CreatedBy: r.CreatedBy, CreatedAt: utc(r.CreatedAt), ExpiresAt: utc(r.ExpiresAt),
		DeliveredAt: utcPtr(r.DeliveredAt), CompletedAt: utcPtr(r.CompletedAt), UpdatedAt: utc(r.UpdatedAt),
	}
}

// CreateCommand inserts c; an empty State is stored as queued.
func (s *Store) CreateCommand(ctx context.Context, cmd *store.Command) error {
	c := *cmd
	store.PrepareCreate(&c.ID, &c.CreatedAt, &c.UpdatedAt)
	if c.State == "" {
		c.State = store.CommandQueued
	}
	c.ExpiresAt, c.DeliveredAt, c.CompletedAt = ts(c.ExpiresAt), tsPtr(c.DeliveredAt), tsPtr(c.CompletedAt)
	row := commandRow{
		ID: c.ID, TenantID: c.TenantID, DeviceID: c.DeviceID, Name: c.Name, Payload: c.Payload,
		State: string(c.State), Result: c.Result, Error: c.Error, RolloutID: c.RolloutID,
		CreatedBy: c.CreatedBy, CreatedAt: c.CreatedAt, ExpiresAt: c.ExpiresAt,
		DeliveredAt: c.DeliveredAt, CompletedAt: c.CompletedAt, UpdatedAt: c.UpdatedAt,
	}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create command %q for device %q", c.Name, c.DeviceID)
	}
	*cmd = c
	return nil
}

// Command returns one of a tenant's commands.
func (s *Store) Command(ctx context.Context, tenantID, id string) (store.Command, error) {
	var row commandRow
	err := s.r.NewSelect().Model(&row).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Scan(ctx)
	if err != nil {
		return store.Command{}, wrap(err, "get command %q", id)
	}
	return row.domain(), nil
}

// ListCommands pages through a tenant's commands matching f.
func (s *Store) ListCommands(ctx context.Context, tenantID string, f store.CommandFilter, opts store.ListOptions) (store.Page[store.Command], error) {
	var rows []commandRow
	q := s.r.NewSelect().Model(&rows).Where("tenant_id = ?", tenantID)
	if f.DeviceID != "" {
		q = q.Where("device_id = ?", f.DeviceID)
	}
	if f.State != "" {
		q = q.Where("state = ?", string(f.State))
	}
	if f.RolloutID != "" {
		q = q.Where("rollout_id = ?", f.RolloutID)
	}
	if err := pageByID(q, opts).Scan(ctx); err != nil {
		return store.Page[store.Command]{}, wrap(err, "list commands of tenant %q", tenantID)
	}
	items := make([]store.Command, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return store.MakePage(items, opts.PageSize(), func(c store.Command) string { return c.ID }), nil
}

// TransitionCommand moves the command from one of t.From to t.To with one conditional UPDATE
// (state IN From), so a duplicated acknowledgement changes nothing the second time and gets
// store.ErrConflict; the updated command is read back in the same transaction.
func (s *Store) TransitionCommand(ctx context.Context, tenantID, id string, t store.CommandTransition) (store.Command, error) {
	if len(t.From) == 0 {
		return store.Command{}, wrap(errors.New("no From state"), "transition command %q", id)
	}
	at := nowOr(t.At)
	from := make([]string, len(t.From))
	for i, st := range t.From {
		from[i] = string(st)
	}
	var row commandRow
	err := s.tx(ctx, func(ctx context.Context, tx bun.Tx) error {
		q := tx.NewUpdate().Table("commands").
			Set("state = ?", string(t.To)).
			Set("updated_at = ?", at)
		if t.Result != "" {
			q = q.Set("result = ?", t.Result)
		}
		if t.Error != "" {
			q = q.Set("error = ?", t.Error)
		}
		switch {
		case t.To == store.CommandDelivered:
			q = q.Set("delivered_at = ?", at)
		case t.Answered:
			q = q.Set("delivered_at = COALESCE(delivered_at, ?)", at)
		}
		if t.To.Final() {
			q = q.Set("completed_at = ?", at)
		}
		res, err := q.
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Where("state IN (?)", bun.In(from)).
			Exec(ctx)
		if err := affected(res, err); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return notFoundOr(ctx, tx, "commands", tenantID, id, store.ErrConflict)
			}
			return err
		}
		return tx.NewSelect().Model(&row).
			Where("tenant_id = ?", tenantID).
			Where("id = ?", id).
			Scan(ctx)
	})
	if err != nil {
		return store.Command{}, wrap(err, "transition command %q to %s", id, t.To)
	}
	return row.domain(), nil
}

// PendingCommands lists a device's queued or delivered commands not expired at now, oldest
// first.
func (s *Store) PendingCommands(ctx context.Context, tenantID, deviceID string, now time.Time) ([]store.Command, error) {
	now = nowOr(now)
	var rows []commandRow
	err := s.r.NewSelect().Model(&rows).
		Where("tenant_id = ?", tenantID).
		Where("device_id = ?", deviceID).
		Where("state IN (?)", bun.In([]string{string(store.CommandQueued), string(store.CommandDelivered)})).
		WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
			return q.Where("expires_at IS NULL").WhereOr("expires_at > ?", now)
		}).
		OrderExpr("id ASC").
		Scan(ctx)
	if err != nil {
		return nil, wrap(err, "list pending commands of device %q", deviceID)
	}
	items := make([]store.Command, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// ExpireCommands moves the tenant's queued or delivered commands whose ExpiresAt is at or
// before now to expired.
func (s *Store) ExpireCommands(ctx context.Context, tenantID string, now time.Time) (int64, error) {
	now = nowOr(now)
	res, err := s.w.NewUpdate().Table("commands").
		Set("state = ?", string(store.CommandExpired)).
		Set("completed_at = ?", now).
		Set("updated_at = ?", now).
		Where("tenant_id = ?", tenantID).
		Where("state IN (?)", bun.In([]string{string(store.CommandQueued), string(store.CommandDelivered)})).
		Where("expires_at IS NOT NULL").
		Where("expires_at <= ?", now).
		Exec(ctx)
	if err != nil {
		return 0, wrap(err, "expire commands of tenant %q", tenantID)
	}
	n, err := res.RowsAffected()
	return n, wrap(err, "expire commands of tenant %q", tenantID)
}
