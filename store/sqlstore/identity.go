package sqlstore

import (
	"context"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// identityRow is a row of identities.
type identityRow struct {
	bun.BaseModel `bun:"table:identities"`

	ID        string    `bun:"id"`
	UserID    string    `bun:"user_id"`
	Provider  string    `bun:"provider"`
	Subject   string    `bun:"subject"`
	Email     string    `bun:"email"`
	CreatedAt time.Time `bun:"created_at"`
}

func (r identityRow) domain() store.Identity {
	return store.Identity{ID: r.ID, UserID: r.UserID, Provider: r.Provider, Subject: r.Subject, Email: r.Email, CreatedAt: utc(r.CreatedAt)}
}

// CreateIdentity links an OAuth account; a (provider, subject) already linked is
// store.ErrConflict.
func (s *Store) CreateIdentity(ctx context.Context, i *store.Identity) error {
	c := *i
	store.PrepareCreate(&c.ID, &c.CreatedAt, nil)
	row := identityRow{ID: c.ID, UserID: c.UserID, Provider: c.Provider, Subject: c.Subject, Email: c.Email, CreatedAt: c.CreatedAt}
	if _, err := s.w.NewInsert().Model(&row).Exec(ctx); err != nil {
		return wrap(err, "create identity %s/%q", c.Provider, c.Subject)
	}
	*i = c
	return nil
}

// IdentityBySubject finds the identity a provider's login names.
func (s *Store) IdentityBySubject(ctx context.Context, provider, subject string) (store.Identity, error) {
	var row identityRow
	err := s.r.NewSelect().Model(&row).
		Where("provider = ?", provider).
		Where("subject = ?", subject).
		Scan(ctx)
	if err != nil {
		return store.Identity{}, wrap(err, "get identity %s/%q", provider, subject)
	}
	return row.domain(), nil
}

// UserIdentities lists a user's identities, oldest first.
func (s *Store) UserIdentities(ctx context.Context, userID string) ([]store.Identity, error) {
	var rows []identityRow
	if err := s.r.NewSelect().Model(&rows).Where("user_id = ?", userID).OrderExpr("id ASC").Scan(ctx); err != nil {
		return nil, wrap(err, "list identities of user %q", userID)
	}
	items := make([]store.Identity, len(rows))
	for i, r := range rows {
		items[i] = r.domain()
	}
	return items, nil
}

// DeleteIdentity unlinks one of a user's identities.
func (s *Store) DeleteIdentity(ctx context.Context, userID, id string) error {
	res, err := s.w.NewDelete().Table("identities").
		Where("user_id = ?", userID).
		Where("id = ?", id).
		Exec(ctx)
	if err := affected(res, err); err != nil {
		return wrap(err, "delete identity %q of user %q", id, userID)
	}
	return nil
}
