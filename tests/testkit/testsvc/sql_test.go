package testsvc

import (
	"net/url"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	a, b := Postgres(t), Postgres(t)
	if a == b {
		t.Fatalf("two calls returned the same database %q", a)
	}
	for _, u := range []string{a, b} {
		if !strings.HasPrefix(u, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(u, "?sslmode=disable") {
			t.Fatalf("Postgres() = %q", u)
		}
		if err := execSQL("pgx", u, "CREATE TABLE t (id integer primary key)"); err != nil {
			t.Fatalf("database %q not usable: %v", u, err)
		}
	}
}

func TestMariaDB(t *testing.T) {
	t.Parallel()
	a, b := MariaDB(t), MariaDB(t)
	if a == b {
		t.Fatalf("two calls returned the same database %q", a)
	}
	for _, raw := range []string{a, b} {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "mysql" || u.User.Username() != "root" {
			t.Fatalf("MariaDB() = %q (%v)", raw, err)
		}
		dsn := "root@tcp(" + u.Host + ")" + u.Path
		if err := execSQL("mysql", dsn, "CREATE TABLE t (id integer primary key)"); err != nil {
			t.Fatalf("database %q not usable: %v", raw, err)
		}
	}
}
