package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// The "espadmin rollout" commands are clients of the rollout routes of the HTTP API
// (docs/ota.md), for pipelines that gate on a canary: start a rollout, pause, resume or abort
// it, and show its progress — with --wait, until it completes (exit 0) or pauses, is aborted
// or fails (exit 1, the reason printed).

const rolloutUsage = `Usage: espadmin rollout start  --project P --release VERSION|ID --target all|tag:T|percent:N|devices:ID,ID [--stages 5,25,100] [--failure-threshold F] [--wait]
       espadmin rollout status ROLLOUT [--wait]
       espadmin rollout pause|resume|abort ROLLOUT
Common flags: --server URL --token T (default $ESPADMIN_TOKEN) [--tenant SLUG]`

// rolloutCmd holds the flags of every rollout subcommand.
type rolloutCmd struct {
	server, token, tenant    string
	project, release, target string
	stages, threshold        string
	wait                     bool
	interval, timeout        time.Duration

	sub            string
	api            *apiCaller
	tenantSlug     string
	stdout, stderr io.Writer
	interactive    bool   // stdout is a terminal: redraw the progress line in place
	lastLine       string // the progress line printed last
}

// rolloutState is the part of a rollout the commands read.
type rolloutState struct {
	ID           string           `json:"id"`
	Version      string           `json:"version"`
	State        string           `json:"state"`
	PauseReason  string           `json:"pause_reason"`
	Stages       []int            `json:"stages"`
	CurrentStage int              `json:"current_stage"`
	Totals       map[string]int64 `json:"totals"`
}

// errRolloutStopped is the error of --wait when the rollout paused, was aborted or failed.
var errRolloutStopped = errors.New("rollout stopped")

func rolloutMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stdout, rolloutUsage)
		return nil
	}
	c := &rolloutCmd{sub: args[0], stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("espadmin rollout "+c.sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.server, "server", "", "base URL of the ESP Admin server (required)")
	fs.StringVar(&c.token, "token", "", "API token with the releases:write scope (default $"+releaseTokenEnv+")")
	fs.StringVar(&c.tenant, "tenant", "", "tenant slug; may be left out with a token, which belongs to one tenant")
	fs.DurationVar(&c.interval, "interval", 5*time.Second, "how often --wait reads the rollout")
	fs.DurationVar(&c.timeout, "timeout", 0, "give up (exit 1) when waiting takes longer; 0 waits as long as the rollout runs")
	switch c.sub {
	case "start":
		fs.StringVar(&c.project, "project", "", "project ID or name (required)")
		fs.StringVar(&c.release, "release", "", "release version (v-x.y.z) or ID (required)")
		fs.StringVar(&c.target, "target", "all", "all, tag:TAG, percent:N or devices:ID,ID")
		fs.StringVar(&c.stages, "stages", "", "stages in percent of the target, e.g. 5,25,100")
		fs.StringVar(&c.threshold, "failure-threshold", "", "fraction of failed devices (0..1) above which the rollout pauses itself")
		fs.BoolVar(&c.wait, "wait", false, "wait until the rollout completes; exit 1 when it pauses, is aborted or fails")
	case "status":
		fs.BoolVar(&c.wait, "wait", false, "wait until the rollout completes; exit 1 when it pauses, is aborted or fails")
	case "pause", "resume", "abort":
	default:
		return fmt.Errorf("rollout: unknown subcommand %q\n%s", c.sub, rolloutUsage)
	}
	rest := args[1:]
	var positional []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintln(stdout, rolloutUsage)
				fs.SetOutput(stdout)
				fs.PrintDefaults()
				return nil
			}
			return fmt.Errorf("rollout %s: %v", c.sub, err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if c.token == "" {
		c.token = os.Getenv(releaseTokenEnv)
	}
	switch {
	case c.server == "":
		return fmt.Errorf("rollout %s: --server is required", c.sub)
	case c.token == "":
		return fmt.Errorf("rollout %s: --token or %s is required", c.sub, releaseTokenEnv)
	case c.sub == "start" && len(positional) != 0:
		return fmt.Errorf("rollout start: unexpected argument %q", positional[0])
	case c.sub != "start" && len(positional) != 1:
		return fmt.Errorf("rollout %s: name exactly one rollout ID", c.sub)
	case c.sub == "start" && (c.project == "" || c.release == ""):
		return errors.New("rollout start: --project and --release are required")
	}
	base, err := url.Parse(strings.TrimRight(c.server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("rollout %s: --server %q must be an http(s) URL", c.sub, c.server)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	c.api = &apiCaller{base: base.String(), token: c.token, http: &http.Client{Timeout: time.Minute}}
	if c.tenantSlug = c.tenant; c.tenantSlug == "" {
		if c.tenantSlug, err = c.api.onlyTenant(ctx); err != nil {
			return fmt.Errorf("rollout %s: %w", c.sub, err)
		}
	}
	if f, ok := stdout.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			c.interactive = true
		}
	}
	var r rolloutState
	switch c.sub {
	case "start":
		r, err = c.start(ctx)
	case "status":
		r, err = c.get(ctx, positional[0])
	default:
		r, err = c.action(ctx, positional[0], c.sub)
	}
	if err != nil {
		return fmt.Errorf("rollout %s: %w", c.sub, err)
	}
	c.print(r)
	if c.wait {
		return c.waitFor(ctx, r)
	}
	return nil
}

func (c *rolloutCmd) path(rest string) string {
	return "/api/v1/tenants/" + url.PathEscape(c.tenantSlug) + "/" + rest
}

func (c *rolloutCmd) send(ctx context.Context, method, path string, body any, want int, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := c.api.request(ctx, method, path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	raw, err := c.api.do(req, want)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

func (c *rolloutCmd) get(ctx context.Context, id string) (rolloutState, error) {
	var r rolloutState
	err := c.api.getJSON(ctx, c.path("rollouts/"+url.PathEscape(id)), &r)
	return r, err
}

func (c *rolloutCmd) action(ctx context.Context, id, verb string) (rolloutState, error) {
	var r rolloutState
	err := c.send(ctx, http.MethodPost, c.path("rollouts/"+url.PathEscape(id)+"/"+verb), nil, http.StatusOK, &r)
	return r, err
}

// parseTarget turns --target into the API's target object.
func parseTarget(s string) (map[string]any, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "all":
		return map[string]any{"kind": "all"}, nil
	case "tag":
		if arg != "" {
			return map[string]any{"kind": "tag", "tag": arg}, nil
		}
	case "percent":
		if n, err := strconv.Atoi(arg); err == nil {
			return map[string]any{"kind": "percent", "percent": n}, nil
		}
	case "devices":
		if arg != "" {
			return map[string]any{"kind": "devices", "device_ids": strings.Split(arg, ",")}, nil
		}
	}
	return nil, fmt.Errorf("--target %q: want all, tag:TAG, percent:N or devices:ID,ID", s)
}

func (c *rolloutCmd) start(ctx context.Context) (rolloutState, error) {
	target, err := parseTarget(c.target)
	if err != nil {
		return rolloutState{}, err
	}
	projectID, err := c.api.projectID(ctx, c.tenantSlug, c.project)
	if err != nil {
		return rolloutState{}, err
	}
	releaseID, err := c.releaseID(ctx, projectID, c.release)
	if err != nil {
		return rolloutState{}, err
	}
	body := map[string]any{"release_id": releaseID, "target": target}
	if c.stages != "" {
		var stages []int
		for _, s := range strings.Split(c.stages, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil {
				return rolloutState{}, fmt.Errorf("--stages %q: want percentages such as 5,25,100", c.stages)
			}
			stages = append(stages, n)
		}
		body["stages"] = stages
	}
	if c.threshold != "" {
		f, err := strconv.ParseFloat(c.threshold, 64)
		if err != nil {
			return rolloutState{}, fmt.Errorf("--failure-threshold %q: want a fraction such as 0.2", c.threshold)
		}
		body["failure_threshold"] = f
	}
	var r rolloutState
	err = c.send(ctx, http.MethodPost, c.path("rollouts"), body, http.StatusCreated, &r)
	return r, err
}

// releaseID resolves --release, a version or an ID, within the project.
func (c *rolloutCmd) releaseID(ctx context.Context, projectID, versionOrID string) (string, error) {
	releases := c.path("projects/" + url.PathEscape(projectID) + "/releases")
	id, found, err := c.api.findID(ctx, releases, func(it listItem) bool { return it.Version == versionOrID || it.ID == versionOrID })
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", fmt.Errorf("no release with version or ID %q in project %s", versionOrID, projectID)
	}
	return id, nil
}

// progress renders one status line: a bar of the devices done, the counts and the stage.
func progress(r rolloutState) string {
	var total, done int64
	for state, n := range r.Totals {
		total += n
		if state == "succeeded" || state == "failed" || state == "skipped" {
			done += n
		}
	}
	const width = 30
	filled := 0
	pct := 0
	if total > 0 {
		filled = int(done * width / total)
		pct = int(done * 100 / total)
	}
	stage := ""
	if len(r.Stages) > 0 {
		stage = fmt.Sprintf(" stage %d/%d (%d%%)", r.CurrentStage+1, len(r.Stages), r.Stages[min(r.CurrentStage, len(r.Stages)-1)])
	}
	line := fmt.Sprintf("[%s%s] %3d%% %d/%d done, %d succeeded, %d failed%s · %s %s", strings.Repeat("#", filled),
		strings.Repeat(".", width-filled), pct, done, total, r.Totals["succeeded"], r.Totals["failed"], stage, r.ID, r.State)
	if r.PauseReason != "" {
		line += ": " + r.PauseReason
	}
	return line
}

// print shows the rollout's progress; on a terminal a repeated line is redrawn in place.
func (c *rolloutCmd) print(r rolloutState) {
	line := progress(r)
	if line == c.lastLine {
		return
	}
	if c.interactive {
		fmt.Fprintf(c.stdout, "\r\033[K%s", line)
		if r.State != "active" {
			fmt.Fprintln(c.stdout)
		}
	} else {
		fmt.Fprintln(c.stdout, line)
	}
	c.lastLine = line
}

// waitFor reads the rollout until it leaves the active state: completed is success, any
// pause (for failures, or waiting for an approval), an abort or a failure is an error that
// says why.
func (c *rolloutCmd) waitFor(ctx context.Context, r rolloutState) error {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		switch r.State {
		case "completed":
			return nil
		case "active":
		default:
			reason := r.State
			if r.PauseReason != "" {
				reason += ": " + r.PauseReason
			}
			return fmt.Errorf("%w: rollout %s is %s", errRolloutStopped, r.ID, reason)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rollout %s: gave up waiting: %w", r.ID, ctx.Err())
		case <-t.C:
		}
		next, err := c.get(ctx, r.ID)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("rollout %s: gave up waiting: %w", r.ID, ctx.Err())
			}
			return fmt.Errorf("rollout %s: %w", r.ID, err)
		}
		r = next
		c.print(r)
	}
}
