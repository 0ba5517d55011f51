package mongostore

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/espadmin/espadmin/store"
)

// keyCheckDoc is a document of key_checks.
type keyCheckDoc struct {
	Name      string    `bson:"_id"`
	KeyID     string    `bson:"key_id"`
	Sealed    []byte    `bson:"sealed"`
	CreatedAt time.Time `bson:"created_at"`
}

func (d keyCheckDoc) domain() store.KeyCheck {
	return store.KeyCheck{Name: d.Name, KeyID: d.KeyID, Sealed: d.Sealed, CreatedAt: utc(d.CreatedAt)}
}

// KeyCheck returns the key check called name, or store.ErrNotFound.
func (s *Store) KeyCheck(ctx context.Context, name string) (store.KeyCheck, error) {
	c, err := findOne(ctx, s.col(colKeyChecks), bson.D{{Key: "_id", Value: name}}, keyCheckDoc.domain)
	if err != nil {
		return store.KeyCheck{}, wrap(err, "get key check %q", name)
	}
	return c, nil
}

// CreateKeyCheck writes c; store.ErrConflict when a check of that name exists.
func (s *Store) CreateKeyCheck(ctx context.Context, c *store.KeyCheck) error {
	c.CreatedAt = orNow(c.CreatedAt)
	_, err := s.col(colKeyChecks).InsertOne(ctx, keyCheckDoc{Name: c.Name, KeyID: c.KeyID, Sealed: c.Sealed, CreatedAt: c.CreatedAt})
	return wrap(err, "create key check %q", c.Name)
}
