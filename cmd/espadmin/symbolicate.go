package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

const releaseSymbolicateUsage = "Usage: espadmin release symbolicate --server URL --token T --project P --version v-x.y.z PANIC.log (or - for standard input)"

// releaseSymbolicate runs "espadmin release symbolicate": a developer pastes a panic log from
// the serial console and reads functions, files and lines from the release's ELF file on the
// server (POST …/releases/:release/symbolicate), without the ELF file at hand.
func releaseSymbolicate(ctx context.Context, args []string, stdout, _ io.Writer) error {
	var server, token, tenant, project, version string
	fs := flag.NewFlagSet("espadmin release symbolicate", flag.ContinueOnError)
	fs.StringVar(&server, "server", "", "base URL of the ESP Admin server (required)")
	fs.StringVar(&token, "token", "", "API token with the devices:read scope (default $"+releaseTokenEnv+")")
	fs.StringVar(&tenant, "tenant", "", "tenant slug; may be left out with a token, which belongs to one tenant")
	fs.StringVar(&project, "project", "", "project ID or name (required)")
	fs.StringVar(&version, "version", "", "the release the device ran, v-x.y.z (required)")
	files, help, err := parseClientArgs(fs, args, stdout, releaseSymbolicateUsage+"\n\nSymbolicate an ESP-IDF panic log (its Backtrace: line, or MEPC and RA on RISC-V) with the\nrelease's ELF file on the server. Prints one frame a line, innermost first.")
	if help || err != nil {
		return err
	}
	if token == "" {
		token = os.Getenv(releaseTokenEnv)
	}
	switch {
	case len(files) != 1:
		return errors.New("release symbolicate: give exactly one panic log file, or - (" + releaseSymbolicateUsage + ")")
	case server == "" || project == "" || version == "":
		return errors.New("release symbolicate: --server, --project and --version are required")
	case token == "":
		return errors.New("release symbolicate: --token or " + releaseTokenEnv + " is required")
	}
	base, err := url.Parse(strings.TrimRight(server, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("release symbolicate: --server %q must be an http(s) URL such as https://fleet.example.com", server)
	}
	var in io.Reader = os.Stdin
	if files[0] != "-" {
		f, err := os.Open(files[0])
		if err != nil {
			return fmt.Errorf("release symbolicate: %w", err)
		}
		defer f.Close()
		in = f
	}
	text, err := io.ReadAll(io.LimitReader(in, 256<<10))
	if err != nil {
		return fmt.Errorf("release symbolicate: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	api := &apiCaller{base: base.String(), token: token, http: &http.Client{}}
	if tenant == "" {
		if tenant, err = api.onlyTenant(ctx); err != nil {
			return fmt.Errorf("release symbolicate: %w", err)
		}
	}
	projectID, err := api.projectID(ctx, tenant, project)
	if err != nil {
		return fmt.Errorf("release symbolicate: %w", err)
	}
	releases := "/api/v1/tenants/" + url.PathEscape(tenant) + "/projects/" + url.PathEscape(projectID) + "/releases"
	var list struct {
		Items []struct {
			ID      string `json:"id"`
			Version string `json:"version"`
		} `json:"items"`
	}
	if err := api.getJSON(ctx, releases, &list); err != nil {
		return fmt.Errorf("release symbolicate: %w", err)
	}
	releaseID := ""
	for _, r := range list.Items {
		if r.Version == version {
			releaseID = r.ID
		}
	}
	if releaseID == "" {
		return fmt.Errorf("release symbolicate: project %s has no release %s", project, version)
	}
	body, _ := json.Marshal(map[string]string{"log": string(text)})
	req, err := api.request(ctx, http.MethodPost, releases+"/"+url.PathEscape(releaseID)+"/symbolicate", strings.NewReader(string(body)))
	if err != nil {
		return fmt.Errorf("release symbolicate: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	raw, err := api.do(req, http.StatusOK)
	if err != nil {
		return fmt.Errorf("release symbolicate: %w", err)
	}
	var out struct {
		Reason    string `json:"reason"`
		Corrupted bool   `json:"corrupted"`
		Stack     []struct {
			PC      string `json:"pc"`
			Func    string `json:"func"`
			File    string `json:"file"`
			Line    int    `json:"line"`
			Inlined bool   `json:"inlined"`
		} `json:"stack"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("release symbolicate: the server's answer is not a stack: %w", err)
	}
	if out.Reason != "" {
		fmt.Fprintf(stdout, "%s\n", out.Reason)
	}
	for _, f := range out.Stack {
		fn := f.Func
		if fn == "" {
			fn = "??"
		}
		loc := "??:0"
		if f.File != "" {
			loc = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		note := ""
		if f.Inlined {
			note = " (inlined)"
		}
		fmt.Fprintf(stdout, "%s: %s at %s%s\n", f.PC, fn, loc, note)
	}
	if out.Corrupted {
		fmt.Fprintln(stdout, "(the backtrace was corrupted beyond this frame)")
	}
	return nil
}
