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
	"slices"
	"strconv"
	"strings"
	"time"
)

// releasePushCmd is "espadmin release push": the CI side of remote updates. It is a client of
// the HTTP API (POST /api/v1/tenants/:tenant/projects/:project/releases, docs/ota.md), so it
// needs no server configuration, only a URL and an API token with the releases:write scope.
type releasePushCmd struct {
	server, token, tenant, project, version, notes string
	rollout, stages, threshold                     string
	stageSoak                                      time.Duration
	requireApproval                                bool
	elf                                            string
	timeout                                        time.Duration
}

// releaseTokenEnv is where release push takes its token from when --token is not given, so
// a CI secret never shows in the process list or the job's command line.
const releaseTokenEnv = "ESPADMIN_TOKEN"

const releasePushUsage = "Usage: espadmin release push --server URL --token T --project P --version v-x.y.z [flags] FIRMWARE.bin"

func (c *releasePushCmd) define(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "base URL of the ESP Admin server, e.g. https://fleet.example.com (required)")
	fs.StringVar(&c.token, "token", "", "API token with the releases:write scope (default $"+releaseTokenEnv+")")
	fs.StringVar(&c.tenant, "tenant", "", "tenant slug; may be left out with a token, which belongs to one tenant")
	fs.StringVar(&c.project, "project", "", "project ID or name (required)")
	fs.StringVar(&c.version, "version", "", "release version, v-x.y.z (required)")
	fs.StringVar(&c.notes, "notes", "", "release notes")
	fs.StringVar(&c.rollout, "rollout", "", "start a rollout: all, tag:TAG, percent:N or devices:ID,ID")
	fs.StringVar(&c.stages, "stages", "", "rollout stages in percent, e.g. 5,25,100")
	fs.StringVar(&c.threshold, "failure-threshold", "", "fraction of failed devices (0..1) above which the rollout pauses itself")
	fs.DurationVar(&c.stageSoak, "stage-soak", 0, "how long each finished rollout stage waits before the next one starts, e.g. 10m")
	fs.BoolVar(&c.requireApproval, "require-approval", false, "pause the rollout at the end of every stage but the last until someone resumes it")
	fs.StringVar(&c.elf, "elf", "", "the build's ELF file (build/PROJECT.elf), kept to symbolicate crash reports; must be the one the image was built from")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "give up when the whole push takes longer")
}

// releasePush runs "espadmin release push" with its arguments: flags and the image path, in
// any order.
func releasePush(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := &releasePushCmd{}
	fs := flag.NewFlagSet("espadmin release push", flag.ContinueOnError)
	c.define(fs)
	files, help, err := parseClientArgs(fs, args, stdout, releasePushUsage+"\n\nUpload an ESP32 application image as a release, optionally starting a rollout.\nPrints the created release (with its rollout) as JSON.")
	if help || err != nil {
		return err
	}
	if c.token == "" {
		c.token = os.Getenv(releaseTokenEnv)
	}
	switch {
	case len(files) != 1:
		return errors.New("release push: give exactly one firmware file (" + releasePushUsage + ")")
	case c.server == "" || c.project == "" || c.version == "":
		return errors.New("release push: --server, --project and --version are required")
	case c.token == "":
		return errors.New("release push: --token or " + releaseTokenEnv + " is required")
	}
	base, err := url.Parse(strings.TrimRight(c.server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("release push: --server %q must be an http(s) URL such as https://fleet.example.com", c.server)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	f, err := os.Open(files[0])
	if err != nil {
		return fmt.Errorf("release push: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("release push: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("release push: %s is not a regular file", files[0])
	}
	api := &apiCaller{base: base.String(), token: c.token, http: &http.Client{}}
	tenant := c.tenant
	if tenant == "" {
		if tenant, err = api.onlyTenant(ctx); err != nil {
			return fmt.Errorf("release push: %w", err)
		}
	}
	projectID, err := api.projectID(ctx, tenant, c.project)
	if err != nil {
		return fmt.Errorf("release push: %w", err)
	}

	if (c.stageSoak != 0 || c.requireApproval) && c.rollout == "" {
		return errors.New("release push: --stage-soak and --require-approval need --rollout")
	}
	if c.stageSoak < 0 || c.stageSoak%time.Second != 0 {
		return fmt.Errorf("release push: --stage-soak %s must be a whole number of seconds, 0 or more", c.stageSoak)
	}
	q := url.Values{"version": {c.version}}
	if c.stageSoak > 0 {
		q.Set("stage_soak_seconds", strconv.FormatInt(int64(c.stageSoak/time.Second), 10))
	}
	if c.requireApproval {
		q.Set("require_approval", "true")
	}
	for k, v := range map[string]string{"notes": c.notes, "rollout": c.rollout, "stages": c.stages, "failure_threshold": c.threshold} {
		if v != "" {
			q.Set(k, v)
		}
	}
	path := "/api/v1/tenants/" + url.PathEscape(tenant) + "/projects/" + url.PathEscape(projectID) + "/releases?" + q.Encode()
	// The file is the body as it is: the transport streams it, and the length lets the server
	// refuse an oversized image before it is sent.
	req, err := api.request(ctx, http.MethodPost, path, f)
	if err != nil {
		return fmt.Errorf("release push: %w", err)
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	raw, err := api.do(req, http.StatusCreated)
	if err != nil {
		return fmt.Errorf("release push: %s: %w", files[0], err)
	}
	var created struct {
		ID       string          `json:"id"`
		Version  string          `json:"version"`
		Warnings []string        `json:"warnings"`
		Rollout  json.RawMessage `json:"rollout"`
	}
	if err := json.Unmarshal(raw, &created); err != nil {
		return fmt.Errorf("release push: the server's answer is not a release: %w", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		return fmt.Errorf("release push: the server's answer is not JSON: %w", err)
	}
	pretty.WriteByte('\n')
	if _, err := stdout.Write(pretty.Bytes()); err != nil {
		return err
	}
	for _, w := range created.Warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if c.elf != "" {
		relPath := "/api/v1/tenants/" + url.PathEscape(tenant) + "/projects/" + url.PathEscape(projectID) + "/releases/" + url.PathEscape(created.ID)
		if err := api.putFile(ctx, relPath+"/elf", c.elf); err != nil {
			return fmt.Errorf("release push: release %s was stored but its ELF file was not: %s: %w", created.Version, c.elf, err)
		}
	}
	// The server stores the release even when the rollout is refused (and says so in a
	// warning); a pipeline that asked for a rollout must not pass without one.
	if c.rollout != "" && len(created.Rollout) == 0 {
		return fmt.Errorf("release push: release %s was stored but its rollout was not started (see the warning above)", created.Version)
	}
	return nil
}

// parseClientArgs parses the flags and file arguments of an API client command, in any order.
// With -h it prints about and the flags to stdout and returns help.
func parseClientArgs(fs *flag.FlagSet, args []string, stdout io.Writer, about string) (files []string, help bool, err error) {
	fs.SetOutput(io.Discard)
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fmt.Fprintf(stdout, "%s\n\nFlags:\n", about)
				fs.PrintDefaults()
				return nil, true, nil
			}
			name := strings.TrimPrefix(fs.Name(), "espadmin ")
			return nil, false, fmt.Errorf("%s: %v (run 'espadmin %s -h' for usage)", name, err, name)
		}
		if fs.NArg() == 0 {
			return files, false, nil
		}
		files = append(files, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// apiCaller makes authenticated calls to the JSON API and turns its error shape into Go
// errors.
type apiCaller struct {
	base, token string
	http        *http.Client
}

func (a *apiCaller) request(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// apiError is the API's one error shape: {"error":{"code","message","fields","request_id"}}.
type apiError struct {
	Status    int               `json:"-"`
	Code      string            `json:"code"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields"`
	RequestID string            `json:"request_id"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteString(":")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(";")
			}
			b.WriteString(" " + k + " " + e.Fields[k])
		}
	}
	fmt.Fprintf(&b, " (HTTP %d", e.Status)
	if e.RequestID != "" {
		b.WriteString(", request ID " + e.RequestID)
	}
	b.WriteString(")")
	return b.String()
}

// do sends req and returns the body of a response with the wanted status, or the API error.
func (a *apiCaller) do(req *http.Request, want int) ([]byte, error) {
	resp, err := a.http.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is known to the caller; keep the reason
		}
		return nil, fmt.Errorf("%s %s: %w", req.Method, a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read the server's answer: %w", err)
	}
	if resp.StatusCode == want {
		return raw, nil
	}
	var shape struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(raw, &shape) == nil && shape.Error != nil && shape.Error.Message != "" {
		shape.Error.Status = resp.StatusCode
		return nil, shape.Error
	}
	return nil, &apiError{Status: resp.StatusCode, Message: "unexpected answer " + strings.TrimSpace(http.StatusText(resp.StatusCode)) + " from " + a.base}
}

func (a *apiCaller) getJSON(ctx context.Context, path string, out any) error {
	req, err := a.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	raw, err := a.do(req, http.StatusOK)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, out)
}

// onlyTenant returns the slug of the token's tenant: an API token belongs to one tenant, so
// GET /api/v1/tenants lists exactly that one.
func (a *apiCaller) onlyTenant(ctx context.Context) (string, error) {
	var page struct {
		Items []struct {
			Slug string `json:"slug"`
		} `json:"items"`
	}
	if err := a.getJSON(ctx, "/api/v1/tenants", &page); err != nil {
		return "", err
	}
	if len(page.Items) != 1 {
		return "", fmt.Errorf("the token reaches %d tenants: name one with --tenant", len(page.Items))
	}
	return page.Items[0].Slug, nil
}

// projectID resolves --project, a project ID or a project name, to the ID the routes take.
func (a *apiCaller) projectID(ctx context.Context, tenant, idOrName string) (string, error) {
	projects := "/api/v1/tenants/" + url.PathEscape(tenant) + "/projects"
	var p struct {
		ID string `json:"id"`
	}
	err := a.getJSON(ctx, projects+"/"+url.PathEscape(idOrName), &p)
	var aerr *apiError
	switch {
	case err == nil:
		return p.ID, nil
	case !errors.As(err, &aerr) || aerr.Status != http.StatusNotFound:
		return "", err
	}
	id, found, err := a.findID(ctx, projects, func(it listItem) bool { return it.Name == idOrName })
	switch {
	case err != nil:
		return "", err
	case !found:
		return "", fmt.Errorf("no project with ID or name %q in tenant %s", idOrName, tenant)
	}
	return id, nil
}

// listItem is what findID reads of a list's items.
type listItem struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// findID pages through the list at path and returns the ID of the first item match accepts.
func (a *apiCaller) findID(ctx context.Context, path string, match func(listItem) bool) (string, bool, error) {
	cursor := ""
	for {
		var page struct {
			Items      []listItem `json:"items"`
			NextCursor string     `json:"next_cursor"`
		}
		q := url.Values{"limit": {"100"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := a.getJSON(ctx, path+"?"+q.Encode(), &page); err != nil {
			return "", false, err
		}
		for _, it := range page.Items {
			if match(it) {
				return it.ID, true, nil
			}
		}
		if page.NextCursor == "" {
			return "", false, nil
		}
		cursor = page.NextCursor
	}
}

// putFile streams a file as the body of a PUT.
func (a *apiCaller) putFile(ctx context.Context, path, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file)
	}
	req, err := a.request(ctx, http.MethodPut, path, f)
	if err != nil {
		return err
	}
	req.ContentLength = fi.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	_, err = a.do(req, http.StatusOK)
	return err
}
