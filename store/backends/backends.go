// Package backends opens the store a database URL names. It is the one place that knows every
// backend, so the rest of the program depends only on the store.Store interface.
package backends

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/mongostore"
	"github.com/espadmin/espadmin/store/sqlstore"
)

// Options are passed on to the chosen backend.
type Options struct {
	Logger *slog.Logger
}

// Schemes lists the database URL schemes Open accepts, for documentation and errors.
var Schemes = []string{"sqlite", "postgres", "postgresql", "mysql", "mongodb", "mongodb+srv"}

// Open connects to the database named by databaseURL: sqlite://, postgres://, postgresql://,
// mysql:// go to the SQL backend; mongodb:// and mongodb+srv:// to the MongoDB backend. It does
// not migrate; call Migrate on the result.
func Open(ctx context.Context, databaseURL string, opts Options) (store.Store, error) {
	scheme, _, ok := strings.Cut(databaseURL, "://")
	if !ok {
		// sqlite::memory: style URLs have no "//".
		scheme, _, _ = strings.Cut(databaseURL, ":")
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "postgres", "postgresql", "mysql":
		s, err := sqlstore.Open(ctx, databaseURL, sqlstore.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		return s, nil
	case "mongodb", "mongodb+srv":
		s, err := mongostore.Open(ctx, databaseURL, mongostore.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("database URL %q: unsupported scheme %q (use one of %s)",
		redact(databaseURL), scheme, strings.Join(Schemes, ", "))
}

// redact hides a password in a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable URL]"
	}
	return u.Redacted()
}
