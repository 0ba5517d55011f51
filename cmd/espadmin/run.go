package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
)

// command is one subcommand. Every command that needs configuration gets all configuration
// flags, so a flag means the same thing everywhere.
type command struct {
	name     string
	summary  string
	noConfig bool
	run      func(ctx context.Context, cfg config.Config, out, errOut io.Writer) error
	// define adds the command's own flags; runIn, when set, replaces run and also gets
	// standard input.
	define func(fs *flag.FlagSet)
	runIn  func(ctx context.Context, cfg config.Config, in io.Reader, out, errOut io.Writer) error
	// client, when set, replaces all of the above: an API client command that takes no server
	// configuration and parses its own flags and file arguments.
	client func(ctx context.Context, args []string, out, errOut io.Writer) error
	// settings, when set, are the only configuration flags the command shows and takes:
	// those it needs to find the data. Every setting still comes from --config and the
	// environment.
	settings []string
}

// Configuration flags of the commands that work on the data of a server without running it.
var (
	dataSettings = []string{"data-dir", "database-url", "log-level", "log-format"}
	linkSettings = append(slices.Clone(dataSettings), "public-url", "http-addr", "reset-link-ttl")
	logSettings  = []string{"log-level", "log-format"}
)

func commands() []command {
	// Fresh flag targets on every call, so values never leak between runs.
	uc, rl, tc, sc := &userCreateCmd{}, &userResetLinkCmd{}, &tokenCreateCmd{}, &simCmd{}
	return []command{
		{name: "serve", summary: "run the server: HTTP API, web UI and the embedded MQTT broker", run: serve},
		{name: "migrate", summary: "apply database migrations and print the schema version", run: migrate},
		{name: "config", summary: "print the effective configuration, secrets redacted", run: printConfig},
		{name: "healthcheck", summary: "exit 0 when the local server answers /readyz (for container health checks)", run: healthcheck,
			settings: []string{"http-addr"}},
		{name: "version", summary: "print version, commit and Go version", noConfig: true},
		{name: "user create", summary: "create a user (and its tenant when new) or add an existing user to a tenant; password from standard input",
			define: uc.define, runIn: uc.run, settings: dataSettings},
		{name: "user reset-link", summary: "print a one-time password-reset URL (for installs without SMTP); the link starts with the server's public URL, so give the --public-url (or ESPADMIN_PUBLIC_URL, or --config file) serve uses",
			define: rl.define, runIn: rl.run, settings: linkSettings},
		{name: "token create", summary: "create an API token; the token is printed alone on the last line",
			define: tc.define, runIn: tc.run, settings: dataSettings},
		{name: "sim", summary: "run simulated devices that speak the device protocol (created through the API or from bundles)", define: sc.define, runIn: sc.run,
			settings: logSettings},
		{name: "release push", summary: "upload a firmware image as a release through the API (for CI), optionally starting a rollout", client: releasePush},
		{name: "release symbolicate", summary: "symbolicate a pasted ESP-IDF panic log with a release's ELF file on the server", client: releaseSymbolicate},
		{name: "rollout", summary: "start, pause, resume, abort or watch a rollout through the API; --wait fails when it pauses (for CI gates)", client: rolloutMain},
	}
}

// runIO is run with standard input given, for commands that read it.
func runIO(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) >= 2 && (args[0] == "user" || args[0] == "token" || args[0] == "release") && !strings.HasPrefix(args[1], "-") {
		args = append([]string{args[0] + " " + args[1]}, args[2:]...)
	}
	return runWith(ctx, args, stdin, stdout, stderr)
}

// run is the whole program; main only adds signals and the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runIO(ctx, args, os.Stdin, stdout, stderr)
}

func runWith(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("missing command (run 'espadmin help' for the list)")
	}
	name, args := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return nil
	}
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		if c.client != nil {
			return c.client(ctx, args, stdout, stderr)
		}
		fs := flag.NewFlagSet("espadmin "+name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var flags *config.Flags
		if !c.noConfig {
			flags = config.RegisterFlags(fs, c.settings...)
		}
		if c.define != nil {
			c.define(fs)
		}
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fmt.Fprintf(stdout, "Usage: espadmin %s [flags]\n\n%s.\n\nFlags:\n", name, c.summary)
				fs.PrintDefaults()
				return nil
			}
			return fmt.Errorf("%s: %v (run 'espadmin %s -h' for usage)", name, err, name)
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("%s: unexpected argument %q (run 'espadmin %s -h' for usage)", name, fs.Arg(0), name)
		}
		if c.noConfig {
			return printVersion(stdout)
		}
		cfg, err := config.Load(flags, nil)
		if err != nil {
			return err
		}
		if c.runIn != nil {
			return c.runIn(ctx, cfg, stdin, stdout, stderr)
		}
		return c.run(ctx, cfg, stdout, stderr)
	}
	return fmt.Errorf("unknown command %q (run 'espadmin help' for the list)", name)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "ESP Admin manages fleets of ESP32 devices.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: espadmin <command> [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'espadmin <command> -h' for its flags; every flag also has an ESPADMIN_* environment")
	fmt.Fprintln(w, "variable (see docs/configuration.md).")
}

// newLogger builds the process logger. Format "auto" means text when w is a terminal, so
// people read plain lines and log collectors get JSON.
func newLogger(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level)) // validated by config.Validate
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.Format
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ensureDataDir creates the data dir and proves it writable, so a bad path fails at start
// with the setting's name instead of deep inside the database driver.
func ensureDataDir(dir string) error {
	fail := func(err error) error {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("invalid ESPADMIN_DATA_DIR / --data-dir: %q is not a writable folder: %v", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fail(err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return fail(err)
	}
	return nil
}

// absPath is for log lines: where the data lives, as a path a person can open.
func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
