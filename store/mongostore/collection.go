package mongostore

import (
	"context"
	"sync"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// collection is a *mongo.Collection whose writes can be serialised within the process.
//
// MongoDB applies each single-document write atomically, and every guarantee in this package
// rests on that. FerretDB v1 does not: it runs an update (and findAndModify) as a query
// followed by a write of the whole modified document, with nothing in between that detects a
// concurrent change (internal/handler/msg_update.go in FerretDB v1.24). Two concurrent
// updates of one document there lose one of them, even when they $set different fields, and
// a conditional update's filter can match a state that another writer has just replaced. So
// when Open finds a FerretDB server, every write through the Store holds a lock for its
// collection, which restores the guarantees for one Store in one process (tests, single-binary
// deployments). Several replicas against FerretDB v1 remain unsafe; use MongoDB for those.
// Reads never lock: FerretDB writes each document in one SQL statement, so a read sees the
// document before or after a write.
type collection struct {
	*mongo.Collection
	mu *sync.Mutex // nil: no serialisation (MongoDB)
}

// writeLocks holds one lock per collection name, created on first use.
type writeLocks struct {
	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

func (w *writeLocks) lock(name string) *sync.Mutex {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.locks == nil {
		w.locks = map[string]*sync.Mutex{}
	}
	l, ok := w.locks[name]
	if !ok {
		l = &sync.Mutex{}
		w.locks[name] = l
	}
	return l
}

func (c collection) acquire() func() {
	if c.mu == nil {
		return func() {}
	}
	c.mu.Lock()
	return c.mu.Unlock
}

func (c collection) InsertOne(ctx context.Context, doc any, opts ...options.Lister[options.InsertOneOptions]) (*mongo.InsertOneResult, error) {
	defer c.acquire()()
	return c.Collection.InsertOne(ctx, doc, opts...)
}

func (c collection) UpdateOne(ctx context.Context, filter, update any, opts ...options.Lister[options.UpdateOneOptions]) (*mongo.UpdateResult, error) {
	defer c.acquire()()
	return c.Collection.UpdateOne(ctx, filter, update, opts...)
}

func (c collection) UpdateMany(ctx context.Context, filter, update any, opts ...options.Lister[options.UpdateManyOptions]) (*mongo.UpdateResult, error) {
	defer c.acquire()()
	return c.Collection.UpdateMany(ctx, filter, update, opts...)
}

func (c collection) ReplaceOne(ctx context.Context, filter, doc any, opts ...options.Lister[options.ReplaceOptions]) (*mongo.UpdateResult, error) {
	defer c.acquire()()
	return c.Collection.ReplaceOne(ctx, filter, doc, opts...)
}

func (c collection) DeleteOne(ctx context.Context, filter any, opts ...options.Lister[options.DeleteOneOptions]) (*mongo.DeleteResult, error) {
	defer c.acquire()()
	return c.Collection.DeleteOne(ctx, filter, opts...)
}

func (c collection) DeleteMany(ctx context.Context, filter any, opts ...options.Lister[options.DeleteManyOptions]) (*mongo.DeleteResult, error) {
	defer c.acquire()()
	return c.Collection.DeleteMany(ctx, filter, opts...)
}

// FindOneAndUpdate runs the findAndModify command before it returns, so the lock covers it.
func (c collection) FindOneAndUpdate(ctx context.Context, filter, update any, opts ...options.Lister[options.FindOneAndUpdateOptions]) *mongo.SingleResult {
	defer c.acquire()()
	return c.Collection.FindOneAndUpdate(ctx, filter, update, opts...)
}
