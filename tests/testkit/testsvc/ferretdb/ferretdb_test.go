package ferretdb

import (
	"context"
	"net/url"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func TestStartGivesIsolatedDatabasesOnOneServer(t *testing.T) {
	first := Start(t)
	second := Start(t)

	a, b := mustParse(t, first), mustParse(t, second)
	if a.Host != b.Host {
		t.Errorf("two Starts in one test used two servers: %s and %s", a.Host, b.Host)
	}
	if a.Path == b.Path || a.Path == "/" || a.Path == "" {
		t.Fatalf("Start returned databases %q and %q, want two distinct names", a.Path, b.Path)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(first))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()

	dbA := client.Database(a.Path[1:])
	dbB := client.Database(b.Path[1:])
	if _, err := dbA.Collection("things").InsertOne(ctx, bson.D{{Key: "_id", Value: "x"}}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	n, err := dbB.Collection("things").CountDocuments(ctx, bson.D{})
	if err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 0 {
		t.Fatalf("the second database sees %d documents of the first", n)
	}
}

func TestServerStopsWithLastUser(t *testing.T) {
	var host string
	t.Run("user", func(t *testing.T) {
		host = mustParse(t, Start(t)).Host
	})
	shared.mu.Lock()
	srv, refs := shared.srv, shared.refs
	shared.mu.Unlock()
	if srv != nil || refs != 0 {
		t.Fatalf("after its only user ended the server is still held (refs %d)", refs)
	}
	// The port was closed: a driver ping fails fast.
	client, err := mongo.Connect(options.Client().ApplyURI("mongodb://" + host + "/").SetServerSelectionTimeout(300 * time.Millisecond))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()
	if err := client.Ping(context.Background(), nil); err == nil {
		t.Fatalf("server at %s still answers after the last test ended", host)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return u
}
