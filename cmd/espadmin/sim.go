package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/internal/config"
	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/server/fleet"
)

// simCmd is `espadmin sim`: simulated devices for demos, tests and benchmarks.
type simCmd struct {
	server, token, tenant string
	count                 int
	project, tags         string
	stateDir              string
	bundles               stringList
	bundlesDir            string
	broker                string
	firmware              string
	duration              time.Duration
	rate                  int
	logLines              int
	profile               string
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (c *simCmd) define(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "server URL to create devices through the API, e.g. http://localhost:8080")
	fs.StringVar(&c.token, "token", "", "API token with devices:write (or ESPADMIN_SIM_TOKEN)")
	fs.StringVar(&c.tenant, "tenant", "", "tenant slug the devices are created in")
	fs.IntVar(&c.count, "count", 1, "number of devices to create or reuse from --state-dir")
	fs.StringVar(&c.project, "project", "", "project ID to link created devices to")
	fs.StringVar(&c.tags, "tags", "", "comma-separated tags for created devices")
	fs.StringVar(&c.stateDir, "state-dir", "sim-devices", "folder keeping the bundles of created devices (they hold secrets: mode 0600)")
	fs.Var(&c.bundles, "bundle", "provisioning bundle file (.json or NVS .csv); repeat for more devices")
	fs.StringVar(&c.bundlesDir, "bundles-dir", "", "folder of provisioning bundle files")
	fs.StringVar(&c.broker, "broker", "", "broker URL overriding the bundles' (tcp://host:port or ssl://host:port)")
	fs.StringVar(&c.firmware, "firmware", sim.DefaultFirmware, "firmware version the devices report")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0 runs until interrupted)")
	fs.IntVar(&c.rate, "rate", 200, "devices started per second (0: all at once)")
	fs.IntVar(&c.logLines, "log-lines", 20, "log lines per second per device while debug is on")
	fs.StringVar(&c.profile, "profile", sim.ProfileESP32, "firmware profile simulated: esp32, or esp8266 (the agent's small-memory profile: 4,608-byte commands, 4,096-byte configs, declared in its metadata)")
}

func (c *simCmd) run(ctx context.Context, cfg config.Config, _ io.Reader, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	bundles, err := c.loadBundles(ctx)
	if err != nil {
		return err
	}
	if len(bundles) == 0 {
		return errors.New("sim: no devices: give --server/--token/--tenant/--count, --bundle or --bundles-dir")
	}
	f, err := sim.NewFleet(bundles, sim.Options{
		BrokerURL: c.broker, Firmware: c.firmware, Logger: log, LogLinesPerSecond: c.logLines, Profile: c.profile,
		StateDir: c.stateDir, // a rotated secret is kept in the device's bundle there
	})
	if err != nil {
		return err
	}
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}
	log.Info("starting simulated devices", "devices", len(bundles))
	f.Start(ctx, c.rate)
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
			s := f.Totals()
			log.Info("simulated fleet", "connected", f.Connected(), "devices", len(bundles),
				"commands", s.Commands, "acks", s.Acks, "restarts", s.Restarts, "log_lines", s.LogLines, "refused", s.Refused)
		}
	}
	f.Stop()
	s := f.Totals()
	_, err = fmt.Fprintf(stdout, "devices %d connects %d refused %d commands %d acks %d restarts %d log_lines %d ota_failures %d\n",
		len(bundles), s.Connects, s.Refused, s.Commands, s.Acks, s.Restarts, s.LogLines, s.OTAFailures)
	return err
}

// loadBundles reads the bundle files, or creates (and remembers) devices through the API.
func (c *simCmd) loadBundles(ctx context.Context) ([]fleet.Bundle, error) {
	fromFiles := len(c.bundles) > 0 || c.bundlesDir != ""
	if fromFiles && c.server != "" {
		return nil, errors.New("sim: use either --server (create devices) or --bundle/--bundles-dir, not both")
	}
	if !fromFiles {
		if c.token == "" {
			c.token = os.Getenv("ESPADMIN_SIM_TOKEN")
		}
		if c.server == "" || c.token == "" || c.tenant == "" || c.count < 1 {
			return nil, errors.New("sim: --server, --token (or ESPADMIN_SIM_TOKEN), --tenant and --count ≥ 1 are required to create devices")
		}
		var tags []string
		for _, t := range strings.Split(c.tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
		api := sim.API{URL: c.server, Token: c.token, Tenant: c.tenant}
		return sim.EnsureDevices(ctx, api, c.stateDir, c.count, "sim", c.project, tags)
	}
	var out []fleet.Bundle
	for _, p := range c.bundles {
		b, err := sim.ReadBundle(p)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	if c.bundlesDir != "" {
		more, err := sim.ReadBundlesDir(c.bundlesDir)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	for _, b := range out {
		if b.Secret == "" {
			return nil, fmt.Errorf("sim: bundle of %s has no secret (download it with ?rotate=true or keep the one from creation)", b.DeviceID)
		}
	}
	return out, nil
}
