package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/store"
)

// loginLimitDoc is a document of login_limits, keyed by the natural field key (unique index).
// locked_until is absent until the key is first locked.
type loginLimitDoc struct {
	Key         string     `bson:"key"`
	Failures    int64      `bson:"failures"`
	LastFailure time.Time  `bson:"last_failure_at"`
	LockedUntil *time.Time `bson:"locked_until,omitempty"`
}

func loginLimitFromDoc(d loginLimitDoc) store.LoginLimit {
	l := store.LoginLimit{Key: d.Key, Failures: int(d.Failures), LastFailure: utc(d.LastFailure)}
	if d.LockedUntil != nil {
		l.LockedUntil = utc(*d.LockedUntil)
	}
	return l
}

// notLockedAt matches a document with no lock active at t (none, or one that ended by t).
func notLockedAt(t time.Time) bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: "locked_until", Value: nil}},
		bson.D{{Key: "locked_until", Value: bson.D{{Key: "$lte", Value: t}}}},
	}}
}

// addLoginFailureAttempts bounds AddLoginFailure's loop. An attempt fails only when another
// writer changed the document between the two steps, which leaves it counting for the next
// attempt's first step; more than two rounds need several starts-over racing at once.
const addLoginFailureAttempts = 5

// LoginLimit returns the record of key; store.ErrNotFound when there is none.
func (s *Store) LoginLimit(ctx context.Context, key string) (store.LoginLimit, error) {
	l, err := findOne(ctx, s.col(colLoginLimits), bson.D{{Key: "key", Value: key}}, loginLimitFromDoc)
	return l, wrap(err, "get login limit %q", key)
}

// AddLoginFailure counts a failure of key with single-document updates whose filters state
// the condition they rely on, so no count is lost to a concurrent writer:
//
//  1. a record that does not start over (a failure since forgetBefore, or a lock active at
//     now) gets $inc of the count and $max of the last failure;
//  2. otherwise a record that does start over is reset to one failure, or, when there is
//     none, created by the upsert. If another writer counted or created the record in
//     between, the filter misses, the upsert's insert hits the unique index on key, and the
//     next round's first step counts the failure.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now, forgetBefore time.Time) (store.LoginLimit, error) {
	now, forgetBefore = store.Timestamp(now), store.Timestamp(forgetBefore)
	c := s.col(colLoginLimits)
	after := options.FindOneAndUpdate().SetReturnDocument(options.After)
	var err error
	for range addLoginFailureAttempts {
		var doc loginLimitDoc
		err = c.FindOneAndUpdate(ctx,
			bson.D{{Key: "key", Value: key}, {Key: "$or", Value: bson.A{
				bson.D{{Key: "last_failure_at", Value: bson.D{{Key: "$gte", Value: forgetBefore}}}},
				bson.D{{Key: "locked_until", Value: bson.D{{Key: "$gt", Value: now}}}},
			}}},
			bson.D{
				{Key: "$inc", Value: bson.D{{Key: "failures", Value: int64(1)}}},
				{Key: "$max", Value: bson.D{{Key: "last_failure_at", Value: now}}},
			},
			after,
		).Decode(&doc)
		if err == nil {
			return loginLimitFromDoc(doc), nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return store.LoginLimit{}, wrap(err, "add login failure to %q", key)
		}
		err = c.FindOneAndUpdate(ctx,
			bson.D{
				{Key: "key", Value: key},
				{Key: "last_failure_at", Value: bson.D{{Key: "$lt", Value: forgetBefore}}},
				notLockedAt(now),
			},
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "failures", Value: int64(1)},
				{Key: "last_failure_at", Value: now},
			}}},
			options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After),
		).Decode(&doc)
		if err == nil {
			return loginLimitFromDoc(doc), nil
		}
		if !isDuplicate(err) {
			return store.LoginLimit{}, wrap(err, "add login failure to %q", key)
		}
	}
	// Not wrapped as store.ErrConflict: the caller has no conflict to resolve, only a failure.
	return store.LoginLimit{}, fmt.Errorf("store: add login failure to %q: still racing after %d attempts: %v",
		key, addLoginFailureAttempts, err)
}

// LockLogin extends the lock of key to until with $max, which keeps a later stored lock.
func (s *Store) LockLogin(ctx context.Context, key string, until time.Time) error {
	res, err := s.col(colLoginLimits).UpdateOne(ctx,
		bson.D{{Key: "key", Value: key}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "locked_until", Value: store.Timestamp(until)}}}})
	if err != nil {
		return wrap(err, "lock login %q", key)
	}
	if res.MatchedCount == 0 {
		return notFound("lock login %q", key)
	}
	return nil
}

// DeleteLoginLimit forgets key.
func (s *Store) DeleteLoginLimit(ctx context.Context, key string) error {
	return deleteOne(ctx, s.col(colLoginLimits), bson.D{{Key: "key", Value: key}}, "login limit", key)
}

// DeleteStaleLoginLimits removes the records with no failure and no lock since before.
func (s *Store) DeleteStaleLoginLimits(ctx context.Context, before time.Time) (int64, error) {
	before = store.Timestamp(before)
	res, err := s.col(colLoginLimits).DeleteMany(ctx, bson.D{
		{Key: "last_failure_at", Value: bson.D{{Key: "$lt", Value: before}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: "locked_until", Value: nil}},
			bson.D{{Key: "locked_until", Value: bson.D{{Key: "$lt", Value: before}}}},
		}},
	})
	if err != nil {
		return 0, wrap(err, "delete stale login limits")
	}
	return res.DeletedCount, nil
}
