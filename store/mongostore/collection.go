package mongostore

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// collection is a *mongo.Collection whose every operation runs in the session of the Store
// it came from, when Atomic bound that Store to a transaction. It lists the operations the
// backend uses instead of embedding the driver's type, so no call can bypass the session.
//
// There is no write serialisation here: every guarantee of this package rests on MongoDB
// applying each single-document write atomically. FerretDB v1 does not isolate concurrent
// updates of one document; that is a limit of FerretDB, documented in the package comment.
type collection struct {
	c    *mongo.Collection
	sess *mongo.Session // nil outside a transaction
}

// bind returns ctx carrying the collection's session, if any.
func (c collection) bind(ctx context.Context) context.Context {
	if c.sess == nil {
		return ctx
	}
	return mongo.NewSessionContext(ctx, c.sess)
}

func (c collection) FindOne(ctx context.Context, filter any, opts ...options.Lister[options.FindOneOptions]) *mongo.SingleResult {
	return c.c.FindOne(c.bind(ctx), filter, opts...)
}

func (c collection) Find(ctx context.Context, filter any, opts ...options.Lister[options.FindOptions]) (*mongo.Cursor, error) {
	return c.c.Find(c.bind(ctx), filter, opts...)
}

func (c collection) CountDocuments(ctx context.Context, filter any, opts ...options.Lister[options.CountOptions]) (int64, error) {
	return c.c.CountDocuments(c.bind(ctx), filter, opts...)
}

func (c collection) Aggregate(ctx context.Context, pipeline any, opts ...options.Lister[options.AggregateOptions]) (*mongo.Cursor, error) {
	return c.c.Aggregate(c.bind(ctx), pipeline, opts...)
}

func (c collection) InsertOne(ctx context.Context, doc any, opts ...options.Lister[options.InsertOneOptions]) (*mongo.InsertOneResult, error) {
	return c.c.InsertOne(c.bind(ctx), doc, opts...)
}

func (c collection) UpdateOne(ctx context.Context, filter, update any, opts ...options.Lister[options.UpdateOneOptions]) (*mongo.UpdateResult, error) {
	return c.c.UpdateOne(c.bind(ctx), filter, update, opts...)
}

func (c collection) UpdateMany(ctx context.Context, filter, update any, opts ...options.Lister[options.UpdateManyOptions]) (*mongo.UpdateResult, error) {
	return c.c.UpdateMany(c.bind(ctx), filter, update, opts...)
}

func (c collection) ReplaceOne(ctx context.Context, filter, doc any, opts ...options.Lister[options.ReplaceOptions]) (*mongo.UpdateResult, error) {
	return c.c.ReplaceOne(c.bind(ctx), filter, doc, opts...)
}

func (c collection) DeleteOne(ctx context.Context, filter any, opts ...options.Lister[options.DeleteOneOptions]) (*mongo.DeleteResult, error) {
	return c.c.DeleteOne(c.bind(ctx), filter, opts...)
}

func (c collection) DeleteMany(ctx context.Context, filter any, opts ...options.Lister[options.DeleteManyOptions]) (*mongo.DeleteResult, error) {
	return c.c.DeleteMany(c.bind(ctx), filter, opts...)
}

func (c collection) FindOneAndUpdate(ctx context.Context, filter, update any, opts ...options.Lister[options.FindOneAndUpdateOptions]) *mongo.SingleResult {
	return c.c.FindOneAndUpdate(c.bind(ctx), filter, update, opts...)
}
