package backends

import (
	"context"
	"strings"
	"testing"
)

func TestOpenRefusesUnknownSchemes(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"redis://u:hunter2@localhost/0", "localhost:5432", ""} {
		_, err := Open(context.Background(), raw, Options{})
		if err == nil {
			t.Fatalf("Open(%q) succeeded", raw)
		}
		if !strings.Contains(err.Error(), "unsupported scheme") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) error = %q: want an unsupported-scheme error without the password", raw, err)
		}
	}
}

func TestOpenSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+t.TempDir()+"/x.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Backend() != "sqlite" {
		t.Fatalf("Backend() = %q, want sqlite", s.Backend())
	}
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
