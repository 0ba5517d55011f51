package config

import (
	"encoding/base64"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md")

// env returns a LookupEnv backed by a map, so tests never touch the process environment.
func env(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// load parses args into a fresh FlagSet and loads the configuration.
func load(t *testing.T, args []string, e map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	return Load(f, env(e))
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var validKey = base64.StdEncoding.EncodeToString(make([]byte, 32))

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("data/espadmin.db")
	want := map[string]bool{
		"data_dir":                c.DataDir == "./data",
		"http.addr":               c.HTTP.Addr == ":8080",
		"http.public_url":         c.HTTP.PublicURL == "http://localhost:8080",
		"http.shutdown_timeout":   c.HTTP.ShutdownTimeout == 10*time.Second,
		"mqtt.addr":               c.MQTT.Addr == ":1883",
		"database.url":            c.Database.URL == "sqlite://"+abs,
		"storage.url":             c.Storage.URL == "data/blobs",
		"log.level":               c.Log.Level == "info",
		"log.format":              c.Log.Format == "auto",
		"security.master_key":     c.Security.MasterKey == "",
		"storage.s3.path_style":   !c.Storage.S3.PathStyle,
		"storage.s3.region":       c.Storage.S3.Region == "",
		"storage.url is not s3":   !c.Storage.IsS3(),
		"errors.retention":        c.Errors.Retention == 90*24*time.Hour,
		"database in data dir ok": strings.HasSuffix(c.Database.URL, "/data/espadmin.db"),
	}
	for k, ok := range want {
		if !ok {
			t.Errorf("default %s wrong; config:\n%s", k, c)
		}
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "espadmin.yaml", `
data_dir: /from/file
http:
  addr: "127.0.0.1:1000"
  shutdown_timeout: 3s
log:
  level: debug
storage:
  s3:
    path_style: true
`)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"file over default", []string{"--config", file}, nil,
			func(c Config) bool {
				return c.DataDir == "/from/file" && c.HTTP.ShutdownTimeout == 3*time.Second && c.Storage.S3.PathStyle
			}},
		{"file via env", nil, map[string]string{"ESPADMIN_CONFIG": file},
			func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:1000" }},
		{"env over file", []string{"--config", file}, map[string]string{"ESPADMIN_HTTP_ADDR": "127.0.0.1:2000"},
			func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:2000" && c.Log.Level == "debug" }},
		{"flag over env", []string{"--config", file, "--http-addr", "127.0.0.1:3000"}, map[string]string{"ESPADMIN_HTTP_ADDR": "127.0.0.1:2000"},
			func(c Config) bool { return c.HTTP.Addr == "127.0.0.1:3000" }},
		{"bool flag without value", []string{"--s3-insecure"}, nil,
			func(c Config) bool { return c.Storage.S3.Insecure }},
		{"bool env false over file true", []string{"--config", file}, map[string]string{"ESPADMIN_S3_PATH_STYLE": "false"},
			func(c Config) bool { return !c.Storage.S3.PathStyle }},
		{"derived defaults follow data dir", []string{"--data-dir", "/srv/esp"}, nil,
			func(c Config) bool {
				return c.Database.URL == "sqlite:///srv/esp/espadmin.db" && c.Storage.URL == "/srv/esp/blobs"
			}},
		{"public url follows addr", []string{"--http-addr", "192.0.2.1:9000"}, nil,
			func(c Config) bool { return c.HTTP.PublicURL == "http://192.0.2.1:9000" }},
		{"sqlite short form", nil, map[string]string{"ESPADMIN_DATABASE_URL": "sqlite:esp.db"},
			func(c Config) bool { return c.Database.URL == "sqlite:esp.db" }},
		{"explicit database url kept", nil, map[string]string{"ESPADMIN_DATABASE_URL": "postgres://u:p@db/esp"},
			func(c Config) bool { return c.Database.URL == "postgres://u:p@db/esp" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config:\n%s", c)
			}
		})
	}
}

func TestSecretFiles(t *testing.T) {
	t.Parallel()
	keyFile := writeFile(t, "master.key", validKey+"\n")
	s3File := writeFile(t, "s3", "s3cr3t\n")
	cfgFile := writeFile(t, "c.yaml", "storage:\n  s3:\n    secret_key_file: "+s3File+"\n")

	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(Config) bool
	}{
		{"env file", nil, map[string]string{"ESPADMIN_MASTER_KEY_FILE": keyFile},
			func(c Config) bool { return c.Security.MasterKey == validKey }},
		{"flag file", []string{"--s3-secret-key-file", s3File}, nil,
			func(c Config) bool { return c.Storage.S3.SecretAccessKey == "s3cr3t" }},
		{"config file key", []string{"--config", cfgFile}, nil,
			func(c Config) bool { return c.Storage.S3.SecretAccessKey == "s3cr3t" }},
		{"env value over file", []string{"--config", cfgFile}, map[string]string{"ESPADMIN_S3_SECRET_KEY": "fromenv"},
			func(c Config) bool { return c.Storage.S3.SecretAccessKey == "fromenv" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := load(t, tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: %+v", c)
			}
		})
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	unknownKey := writeFile(t, "c.yaml", "http:\n  adr: ':80'\n")
	badYAML := writeFile(t, "bad.yaml", "http: [\n")
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"unsupported database scheme", []string{"--database-url", "foo://x"}, nil,
			[]string{`invalid ESPADMIN_DATABASE_URL / --database-url: unsupported scheme "foo"`}},
		{"database url without scheme", nil, map[string]string{"ESPADMIN_DATABASE_URL": "just-a-path"},
			[]string{"ESPADMIN_DATABASE_URL", "missing scheme"}},
		{"malformed postgres url hides password", nil, map[string]string{"ESPADMIN_DATABASE_URL": "postgres://u:hunter2@host:port/db"},
			[]string{"ESPADMIN_DATABASE_URL", "malformed postgres URL"}},
		{"master key too short", nil, map[string]string{"ESPADMIN_MASTER_KEY": short},
			[]string{"ESPADMIN_MASTER_KEY", "16 bytes, want 32"}},
		{"master key not base64", nil, map[string]string{"ESPADMIN_MASTER_KEY": "%%%"},
			[]string{"ESPADMIN_MASTER_KEY", "base64"}},
		{"bad log level", []string{"--log-level", "loud"}, nil,
			[]string{"ESPADMIN_LOG_LEVEL / --log-level", `"loud"`}},
		{"bad duration", nil, map[string]string{"ESPADMIN_SHUTDOWN_TIMEOUT": "soon"},
			[]string{"ESPADMIN_SHUTDOWN_TIMEOUT", "duration"}},
		{"bad bool", nil, map[string]string{"ESPADMIN_S3_INSECURE": "maybe"},
			[]string{"ESPADMIN_S3_INSECURE", "boolean"}},
		{"bad http addr", []string{"--http-addr", "8080"}, nil,
			[]string{"ESPADMIN_HTTP_ADDR / --http-addr"}},
		{"bad storage scheme", nil, map[string]string{"ESPADMIN_STORAGE_URL": "ftp://x"},
			[]string{"ESPADMIN_STORAGE_URL", `"ftp"`}},
		{"s3 without bucket", nil, map[string]string{"ESPADMIN_STORAGE_URL": "s3://"},
			[]string{"ESPADMIN_STORAGE_URL", "bucket"}},
		{"secret and file both", nil, map[string]string{"ESPADMIN_MASTER_KEY": validKey, "ESPADMIN_MASTER_KEY_FILE": "/x"},
			[]string{"ESPADMIN_MASTER_KEY", "not both"}},
		{"missing secret file", nil, map[string]string{"ESPADMIN_MASTER_KEY_FILE": "/nonexistent/key"},
			[]string{"ESPADMIN_MASTER_KEY_FILE"}},
		{"unknown file key", []string{"--config", unknownKey}, nil,
			[]string{"--config", `unknown key "http.adr"`}},
		{"bad yaml", nil, map[string]string{"ESPADMIN_CONFIG": badYAML},
			[]string{"ESPADMIN_CONFIG", "parse YAML"}},
		{"missing config file", []string{"--config", "/nonexistent.yaml"}, nil,
			[]string{"--config /nonexistent.yaml"}},
		{"errors retention too short", []string{"--errors-retention", "24h"}, nil,
			[]string{"invalid ESPADMIN_ERRORS_RETENTION / --errors-retention", "0 (keep forever) or from 48h0m0s"}},
		{"errors retention negative", nil, map[string]string{"ESPADMIN_ERRORS_RETENTION": "-1h"},
			[]string{"ESPADMIN_ERRORS_RETENTION / --errors-retention", "keep forever"}},
		{"errors retention not a duration", nil, map[string]string{"ESPADMIN_ERRORS_RETENTION": "90d"},
			[]string{"ESPADMIN_ERRORS_RETENTION", "duration"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.args, tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error spans lines: %q", msg)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("error leaks password: %q", msg)
			}
		})
	}
}

// TestErrorsRetention: errors.retention takes 0 (keep forever) and durations from 48h (twice
// a core dump's upload window) to 5 years.
func TestErrorsRetention(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		value string
		want  time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"48h", 48 * time.Hour},
		{"720h", 30 * 24 * time.Hour},
		{"43800h", 5 * 365 * 24 * time.Hour},
	} {
		c, err := load(t, []string{"--errors-retention", tt.value}, nil)
		if err != nil || c.Errors.Retention != tt.want {
			t.Errorf("--errors-retention %s: %v, %v; want %v", tt.value, c.Errors.Retention, err, tt.want)
		}
	}
	for _, bad := range []string{"47h59m", "43801h"} {
		if _, err := load(t, nil, map[string]string{"ESPADMIN_ERRORS_RETENTION": bad}); err == nil || !strings.Contains(err.Error(), "ESPADMIN_ERRORS_RETENTION") {
			t.Errorf("ESPADMIN_ERRORS_RETENTION=%s: %v, want an error naming the setting", bad, err)
		}
	}
}

func TestRedacted(t *testing.T) {
	t.Parallel()
	c, err := load(t, nil, map[string]string{
		"ESPADMIN_MASTER_KEY":    validKey,
		"ESPADMIN_S3_SECRET_KEY": "s3-secret-value",
		"ESPADMIN_DATABASE_URL":  "postgres://admin:db-password@db:5432/esp?sslmode=disable&password=other-secret",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := c.String()
	for _, secret := range []string{validKey, "s3-secret-value", "db-password", "other-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("printout leaks %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"master_key: '[redacted]'", "secret_key: '[redacted]'", "admin:[redacted]@db:5432"} {
		if !strings.Contains(out, want) {
			t.Errorf("printout lacks %q:\n%s", want, out)
		}
	}
	if c.Security.MasterKey != validKey {
		t.Error("Redacted modified the original")
	}
	// Empty secrets stay empty, so the printout shows what is unset.
	if r := Defaults().Redacted(); r.Security.MasterKey != "" {
		t.Errorf("empty secret printed as %q", r.Security.MasterKey)
	}
}

// TestYAMLRoundTrip proves the printout is itself a valid configuration file.
func TestYAMLRoundTrip(t *testing.T) {
	t.Parallel()
	c, err := load(t, []string{"--http-addr", "127.0.0.1:7000", "--s3-path-style", "--shutdown-timeout", "1m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := load(t, []string{"--config", writeFile(t, "c.yaml", string(out))}, nil)
	if err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	if back != c {
		t.Errorf("round trip differs:\n%+v\n%+v", c, back)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"sqlite:///data/espadmin.db", "sqlite:///data/espadmin.db"},
		{"postgres://u:p@h/db", "postgres://u:[redacted]@h/db"},
		{"postgres://u@h/db", "postgres://u@h/db"},
		{"mongodb://u:p@h1,h2/db?replicaSet=rs", "mongodb://u:[redacted]@h1,h2/db?replicaSet=rs"},
		{"mysql://u:p@bad host/db", "mysql://[redacted]@bad host/db"},
		{"./data/blobs", "./data/blobs"},
	}
	for _, tt := range tests {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTableIsConsistent(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range settings {
		for _, name := range []string{"key:" + s.key, "flag:" + s.flag, "env:" + s.env} {
			if name != "flag:" && seen[name] {
				t.Errorf("duplicate %s", name)
			}
			seen[name] = true
		}
		if !strings.HasPrefix(s.env, "ESPADMIN_") {
			t.Errorf("%s: env %s lacks the ESPADMIN_ prefix", s.key, s.env)
		}
		if s.secret && s.flag != "" {
			t.Errorf("%s: secrets take no plain flag", s.key)
		}
		if s.help == "" {
			t.Errorf("%s: no help", s.key)
		}
	}
	for _, fixed := range [][2]string{
		{"data-dir", "ESPADMIN_DATA_DIR"}, {"http-addr", "ESPADMIN_HTTP_ADDR"}, {"mqtt-addr", "ESPADMIN_MQTT_ADDR"},
		{"database-url", "ESPADMIN_DATABASE_URL"}, {"storage-url", "ESPADMIN_STORAGE_URL"},
	} {
		if !seen["flag:"+fixed[0]] || !seen["env:"+fixed[1]] {
			t.Errorf("fixed name %v missing", fixed)
		}
	}
}

// TestDefaultsGivenOnce: a setting of a sub-struct owned by another package takes its default
// from that package, so the table must not give a second one that could drift from it.
func TestDefaultsGivenOnce(t *testing.T) {
	t.Parallel()
	d := packageDefaults()
	for _, s := range settings {
		if s.def == "" {
			continue
		}
		var zero Config
		if s.value(&d) != s.value(&zero) {
			t.Errorf("%s: default %q in the table and %v from its package", s.key, s.def, s.value(&d))
		}
	}
	if !reflect.DeepEqual(Defaults().MQTT.Config, broker.DefaultConfig()) {
		t.Error("the mqtt settings change the broker's defaults")
	}
}

// TestDocsUpToDate fails when docs/configuration.md no longer matches the settings table.
func TestDocsUpToDate(t *testing.T) {
	path := filepath.Join("..", "..", "..", "..", "docs", "configuration.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceGenerated(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if want != string(doc) {
		t.Errorf("%s is out of date; run: go test ./cmd/espadmin/internal/config -update", path)
	}
}
