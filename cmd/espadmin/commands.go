package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
)

// Set at build time: go build -ldflags "-X main.version=v1.2.3 -X main.commit=abc123".
// When empty, the module version and VCS revision recorded by the Go toolchain are used.
var (
	version string
	commit  string
)

// migrate applies pending migrations and prints the resulting schema version.
func migrate(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	if cfg.Database.URL == config.DefaultDatabaseURL(cfg.DataDir) {
		// The default SQLite file lives in the data dir; make sure it can be created.
		if err := ensureDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeStore(st, log)
	v, err := st.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	fmt.Fprintf(stdout, "schema version %d\n", v)
	return nil
}

// printConfig prints the effective configuration as YAML, secrets redacted. The output is a
// valid configuration file.
func printConfig(_ context.Context, cfg config.Config, stdout, _ io.Writer) error {
	_, err := io.WriteString(stdout, cfg.String())
	return err
}

// healthcheck asks the local server's /readyz; it is the Docker HEALTHCHECK, which has no
// curl in a static image.
func healthcheck(ctx context.Context, cfg config.Config, stdout, _ io.Writer) error {
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("invalid ESPADMIN_HTTP_ADDR / --http-addr: %w", err)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	url := "http://" + net.JoinHostPort(host, port) + "/readyz"
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// printVersion prints the version, commit and Go version.
func printVersion(stdout io.Writer) error {
	v, c := version, commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if c == "" && s.Key == "vcs.revision" {
				c = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	}
	_, err := fmt.Fprintf(stdout, "espadmin %s\ncommit %s\n%s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return err
}
