package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// releaseServer is "espadmin serve" run in-process on a temp data dir, with a user, a tenant
// "acme", an API token for it and one project.
type releaseServer struct {
	url, token, project string
}

func startReleaseServer(t testing.TB) releaseServer {
	t.Helper()
	dir := t.TempDir()
	base := []string{"--data-dir", dir, "--log-level", "error"}
	cli := func(stdin string, args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runIO(t.Context(), append(args, base...), strings.NewReader(stdin), &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	cli("a long password\n", "user", "create", "--email", "ci@example.com", "--tenant", "acme")
	out := cli("", "token", "create", "--email", "ci@example.com", "--tenant", "acme", "--name", "ci",
		"--scopes", "devices:read,devices:write,releases:write")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]

	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, append([]string{"serve", "--http-addr", addr, "--mqtt-addr", "127.0.0.1:0", "--mqtt-tls-addr", ""}, base...), io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	url := "http://" + addr
	poll.Until(t, 20*time.Second, "server ready", func() bool {
		status, _, _ := get(url + "/readyz")
		return status == http.StatusOK
	})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/api/v1/tenants/acme/projects", strings.NewReader(`{"name":"thermostat"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create project: %d %v", resp.StatusCode, err)
	}
	return releaseServer{url: url, token: token, project: p.ID}
}

func TestReleasePush(t *testing.T) {
	srv := startReleaseServer(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	img := otatest.Image(otatest.ImageOptions{Version: "v-1.2.3", Size: 300 << 10})
	good := write("firmware.bin", img)
	notImage := write("notes.txt", []byte("#!/bin/sh\necho this is not firmware\n"))
	push := func(args ...string) (stdout, stderr string, err error) {
		var out, errOut bytes.Buffer
		err = run(t.Context(), append([]string{"release", "push"}, args...), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	// A good push, the token from the environment, the project by name, the file before the
	// flags: the release is printed as JSON, and the token nowhere.
	t.Setenv(releaseTokenEnv, srv.token)
	stdout, stderr, err := push(good, "--server", srv.url, "--project", "thermostat", "--version", "v-1.2.3", "--notes", "first")
	if err != nil {
		t.Fatalf("push: %v (stderr %q)", err, stderr)
	}
	var rel struct {
		ID, Version, Notes, SHA256 string
		Size                       int64
		Image                      struct {
			Chip       string
			AppVersion string `json:"app_version"`
		}
		Warnings []string
	}
	if err := json.Unmarshal([]byte(stdout), &rel); err != nil {
		t.Fatalf("stdout is not the release JSON: %v\n%s", err, stdout)
	}
	if rel.ID == "" || rel.Version != "v-1.2.3" || rel.Notes != "first" || rel.Size != int64(len(img)) ||
		rel.Image.Chip != "esp32" || rel.Image.AppVersion != "v-1.2.3" || len(rel.Warnings) != 0 {
		t.Errorf("release %+v", rel)
	}
	if strings.Contains(stdout+stderr, srv.token) {
		t.Error("the token was printed")
	}

	// The server lists it, under the project ID given on the command line this time.
	t.Setenv(releaseTokenEnv, "")
	stdout, _, err = push("--server", srv.url, "--token", srv.token, "--project", srv.project, "--tenant", "acme",
		"--version", "v-1.2.3", good)
	if err == nil || !strings.Contains(err.Error(), "already exists") || !strings.Contains(err.Error(), "HTTP 409") || stdout != "" {
		t.Errorf("duplicate push: %v, stdout %q", err, stdout)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		{"bad version", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "1.2.4", good},
			[]string{"invalid input", "version must be of the form v-x.y.z", "HTTP 422"}},
		{"not an image", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.2.5", notImage},
			[]string{"not an ESP32 application image", "HTTP 422"}},
		{"missing file", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.2.6", filepath.Join(dir, "nope.bin")},
			[]string{"nope.bin", "no such file"}},
		{"unknown project", []string{"--server", srv.url, "--token", srv.token, "--project", "toaster", "--version", "v-1.2.7", good},
			[]string{`no project with ID or name "toaster"`}},
		{"bad token", []string{"--server", srv.url, "--token", "espadmin_bogus", "--project", srv.project, "--version", "v-1.2.8", good},
			[]string{"HTTP 401"}},
		{"unreachable server", []string{"--server", "http://" + freePort(t), "--token", srv.token, "--project", srv.project, "--version", "v-1.2.9", good},
			[]string{"connection refused"}},
		{"no token", []string{"--server", srv.url, "--project", srv.project, "--version", "v-1.3.0", good},
			[]string{"--token or ESPADMIN_TOKEN is required"}},
		{"soak without a rollout", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.3.3", "--stage-soak", "10m", good},
			[]string{"--stage-soak and --require-approval need --rollout"}},
		{"soak not in whole seconds", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.3.3", "--rollout", "all", "--stage-soak", "1500ms", good},
			[]string{"--stage-soak 1.5s must be a whole number of seconds"}},
		{"two files", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.3.1", good, good},
			[]string{"exactly one firmware file"}},
		{"rollout to nothing", []string{"--server", srv.url, "--token", srv.token, "--project", srv.project, "--version", "v-1.3.2", "--rollout", "all",
			write("v132.bin", otatest.Image(otatest.ImageOptions{Version: "v-1.3.2"}))},
			[]string{"stored but its rollout was not started"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := push(tc.args...)
			if err == nil {
				t.Fatalf("no error; stdout %q", stdout)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error()+stdout+stderr, srv.token) {
				t.Error("the token was printed")
			}
		})
	}

	// Only the good push and the release whose rollout found no device are stored.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.url+"/api/v1/tenants/acme/projects/"+srv.project+"/releases", nil)
	req.Header.Set("Authorization", "Bearer "+srv.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Items []struct{ Version string } }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Version != "v-1.3.2" || list.Items[1].Version != "v-1.2.3" {
		t.Errorf("releases %+v", list.Items)
	}
}

func TestReleasePushHelp(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"release", "push", "-h"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--server", "-failure-threshold", "ESPADMIN_TOKEN"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(t.Context(), []string{"help"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "release push") {
		t.Errorf("help lacks release push: %v\n%s", err, out.String())
	}
}

// BenchmarkOTADownload measures 500 devices downloading a 1.5 MB image at once: from
// "espadmin serve" through a signed URL (the local blob handler behind the whole HTTP stack:
// request IDs, metrics, recovery, body limits, signature check, ServeContent), and from Go's
// http.FileServer serving the same file on loopback, with the same client. Each iteration is
// one wave of 500 concurrent GETs; MB/s is what the waves moved. docs/benchmarks.md has the
// figures and the command:
//
//	go test ./cmd/espadmin -run '^$' -bench OTADownload -benchtime 20x
func BenchmarkOTADownload(b *testing.B) {
	const devices = 500
	img := otatest.Image(otatest.ImageOptions{Version: "v-2.0.0", Size: 1536 << 10})
	srv := startReleaseServer(b)
	file := filepath.Join(b.TempDir(), "firmware.bin")
	if err := os.WriteFile(file, img, 0o600); err != nil {
		b.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(b.Context(), []string{"release", "push", "--server", srv.url, "--token", srv.token, "--project", srv.project,
		"--version", "v-2.0.0", file}, &out, io.Discard); err != nil {
		b.Fatal(err)
	}
	var rel struct{ ID string }
	if err := json.Unmarshal(out.Bytes(), &rel); err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, srv.url+"/api/v1/tenants/acme/projects/"+srv.project+"/releases/"+rel.ID+"/download", nil)
	req.Header.Set("Authorization", "Bearer "+srv.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	var dl struct{ URL string }
	err = json.NewDecoder(resp.Body).Decode(&dl)
	resp.Body.Close()
	if err != nil || dl.URL == "" {
		b.Fatalf("download URL: %d %v", resp.StatusCode, err)
	}
	static := httptest.NewServer(http.FileServer(http.Dir(filepath.Dir(file))))
	defer static.Close()

	// Both servers are measured in the same loop, wave after wave, so a change in the
	// machine's load affects both alike and the ratio stays meaningful.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: devices, DisableCompression: true}}
	defer client.CloseIdleConnections()
	wave := func(url string) (time.Duration, error) {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, devices)
		for range devices {
			wg.Go(func() {
				resp, err := client.Get(url)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				n, err := io.Copy(io.Discard, resp.Body)
				if err == nil && (resp.StatusCode != http.StatusOK || n != int64(len(img))) {
					err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, n)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		return time.Since(start), <-errs
	}
	plain := static.URL + "/firmware.bin"
	for _, u := range []string{dl.URL, plain} { // warm both connection pools
		if _, err := wave(u); err != nil {
			b.Fatal(err)
		}
	}
	var ours, theirs time.Duration
	for b.Loop() {
		d1, err := wave(dl.URL)
		if err != nil {
			b.Fatal(err)
		}
		d2, err := wave(plain)
		if err != nil {
			b.Fatal(err)
		}
		ours, theirs = ours+d1, theirs+d2
	}
	bytesPerWave := float64(devices * len(img))
	waves := float64(b.N)
	b.ReportMetric(bytesPerWave*waves/ours.Seconds()/1e6, "espadmin-MB/s")
	b.ReportMetric(bytesPerWave*waves/theirs.Seconds()/1e6, "fileserver-MB/s")
	b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio")
}
