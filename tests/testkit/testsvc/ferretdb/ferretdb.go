// Package ferretdb serves the MongoDB wire protocol to tests from FerretDB embedded in the test
// process (SQLite handler, temporary folder), because no MongoDB server can be installed on the
// development and CI machines. It is a package of its own so that FerretDB and its
// dependencies are linked only into the test binaries that need them.
//
// One server is shared by the tests of a test binary that overlap in time: the first Start
// launches it, and it stops when the last test that called Start ends. Every Start returns a URL
// naming a fresh database, so tests sharing the server never see each other's data.
//
// FerretDB logs every connection and command. Its logs are discarded unless
// ESPADMIN_FERRETDB_LOG=1, which writes them (debug level) to standard error.
package ferretdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// startTimeout bounds how long Start waits for the server to answer a ping.
const startTimeout = 30 * time.Second

// server is one running FerretDB instance.
type server struct {
	uri    string // mongodb://127.0.0.1:PORT/
	cancel context.CancelFunc
	done   chan struct{}
	dir    string
}

// shared holds the server used by the tests that currently need one. A test binary is one
// process, so this is the only place that can hand the same server to several tests.
var shared struct {
	mu   sync.Mutex
	srv  *server
	refs int
}

// databaseSeq makes database names unique within the process; the process ID and the
// nanosecond clock make them unique across runs that reuse a folder.
var databaseSeq atomic.Int64

// Start returns a MongoDB URL (mongodb://127.0.0.1:PORT/DATABASE) naming a fresh, empty
// database on an embedded FerretDB server. The server is started on first use and stopped
// when the last test using it ends. When FerretDB cannot start, the test is skipped locally
// and fails in CI (testsvc.Unavailable).
func Start(tb testing.TB) (mongoURL string) {
	tb.Helper()

	shared.mu.Lock()
	if shared.srv == nil {
		srv, err := startServer()
		if err != nil {
			shared.mu.Unlock()
			testsvc.Unavailable(tb, "FerretDB", err)
			return ""
		}
		shared.srv = srv
	}
	shared.refs++
	base := shared.srv.uri
	shared.mu.Unlock()

	tb.Cleanup(release)

	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("ferretdb: parse server URI %q: %v", base, err)
	}
	u.Path = "/" + DatabaseName()
	return u.String()
}

// DatabaseName returns a database name that no other call in this process returns. It is
// short enough for MongoDB's 64-byte limit and uses only characters every server accepts.
func DatabaseName() string {
	return fmt.Sprintf("test_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, databaseSeq.Add(1))
}

// release drops one reference to the shared server and stops it when none is left.
func release() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.refs--
	if shared.refs > 0 || shared.srv == nil {
		return
	}
	shared.srv.stop()
	shared.srv = nil
}

// startServer launches FerretDB on a free loopback port with its SQLite files in a new
// temporary folder, and returns once it answers a ping.
func startServer() (_ *server, err error) {
	dir, err := os.MkdirTemp("", "espadmin-ferretdb-")
	if err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    logger(),
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		return nil, fmt.Errorf("create server: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	srv := &server{
		// New has already bound the listener, so the address is known.
		uri:    f.MongoDBURI(),
		cancel: cancel,
		done:   make(chan struct{}),
		dir:    dir,
	}
	runErr := make(chan error, 1)
	go func() {
		defer close(srv.done)
		runErr <- f.Run(ctx)
	}()

	if err := waitReady(srv.uri, srv.done, runErr); err != nil {
		srv.stop()
		return nil, err
	}
	return srv, nil
}

// waitReady pings the server until it answers, it exits, or startTimeout passes.
func waitReady(uri string, done <-chan struct{}, runErr <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(time.Second).
		SetConnectTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", uri, err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()

	var lastErr error
	for {
		pingCtx, pingCancel := context.WithTimeout(ctx, time.Second)
		lastErr = client.Ping(pingCtx, nil)
		pingCancel()
		if lastErr == nil {
			return nil
		}
		select {
		case <-done:
			err := <-runErr
			return fmt.Errorf("server at %s exited during start: %w", uri, errors.Join(err, lastErr))
		case <-ctx.Done():
			return fmt.Errorf("server at %s did not answer within %v: %w", uri, startTimeout, lastErr)
		case <-time.After(50 * time.Millisecond): // poll interval, not synchronisation
		}
	}
}

// stop cancels the server, waits for it to close its listener and connections, and removes
// its data folder.
func (s *server) stop() {
	s.cancel()
	<-s.done
	_ = os.RemoveAll(s.dir)
}

// logger returns where FerretDB's logs go: nowhere, unless ESPADMIN_FERRETDB_LOG is true.
func logger() *slog.Logger {
	if on, _ := strconv.ParseBool(os.Getenv("ESPADMIN_FERRETDB_LOG")); on {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
