package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/server/ota/otatest"
)

// TestRolloutCommands drives a rollout of a real server through the CLI: start, pause, a
// --wait that fails on the pause with its reason, resume, abort, and bad input.
func TestRolloutCommands(t *testing.T) {
	srv := startReleaseServer(t)
	img := filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(img, otatest.Image(otatest.ImageOptions{Version: "v-2.0.0"}), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(releaseTokenEnv, srv.token)
	if err := run(t.Context(), []string{"release", "push", "--server", srv.url, "--project", "thermostat", "--version", "v-2.0.0", img}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.url+"/api/v1/tenants/acme/devices", strings.NewReader(`{"name":"canary","project_id":"`+srv.project+`"}`))
	req.Header.Set("Authorization", "Bearer "+srv.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var dev struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&dev)
	resp.Body.Close()

	cli := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), append([]string{"rollout"}, append(args, "--server", srv.url)...), &out, &bytes.Buffer{})
		return out.String(), err
	}
	out, err := cli("start", "--project", "thermostat", "--release", "v-2.0.0", "--target", "devices:"+dev.ID, "--stages", "50,100")
	if err != nil || !strings.Contains(out, " active") || !strings.Contains(out, "0/1 done") || !strings.Contains(out, "stage 1/2 (50%)") {
		t.Fatalf("start: %v\n%s", err, out)
	}
	id := strings.Fields(strings.SplitN(out, "· ", 2)[1])[0]

	if out, err = cli("pause", id); err != nil || !strings.Contains(out, id+" paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	out, err = cli("status", id, "--wait", "--interval", "50ms")
	if !errors.Is(err, errRolloutStopped) || !strings.Contains(err.Error(), "is paused") {
		t.Fatalf("status --wait on a paused rollout = %v, want a failure naming the pause\n%s", err, out)
	}
	if out, err = cli("resume", id); err != nil || !strings.Contains(out, id+" active") {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	// The canary is offline, so the rollout stays active: --wait gives up at its timeout.
	if _, err = cli("status", id, "--wait", "--interval", "50ms", "--timeout", "3s"); err == nil || !strings.Contains(err.Error(), "gave up waiting") {
		t.Fatalf("status --wait --timeout = %v", err)
	}
	if out, err = cli("abort", id); err != nil || !strings.Contains(out, id+" aborted") {
		t.Fatalf("abort: %v\n%s", err, out)
	}
	if _, err = cli("status", id, "--wait"); !errors.Is(err, errRolloutStopped) || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("status --wait on an aborted rollout = %v", err)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"start", "--project", "thermostat", "--release", "v-2.0.0", "--target", "everything"}, "--target"},
		{[]string{"start", "--project", "thermostat", "--release", "v-9.9.9"}, "no release"},
		{[]string{"start", "--project", "thermostat"}, "--release are required"},
		{[]string{"status"}, "exactly one rollout"},
		{[]string{"status", "nope"}, "HTTP 404"},
		{[]string{"explode", "x"}, "unknown subcommand"},
	} {
		if _, err := cli(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}

func TestRolloutProgressLine(t *testing.T) {
	r := rolloutState{ID: "r1", State: "paused", PauseReason: "awaiting approval", Stages: []int{10, 100}, CurrentStage: 1,
		Totals: map[string]int64{"succeeded": 5, "failed": 1, "pending": 4}}
	want := "[##################............]  60% 6/10 done, 5 succeeded, 1 failed stage 2/2 (100%) · r1 paused: awaiting approval"
	if got := progress(r); got != want {
		t.Errorf("progress =\n%q, want\n%q", got, want)
	}
	c := &rolloutCmd{interval: time.Millisecond}
	if err := c.waitFor(t.Context(), rolloutState{ID: "r1", State: "completed"}); err != nil {
		t.Errorf("waitFor a completed rollout = %v", err)
	}
	if err := c.waitFor(t.Context(), r); !errors.Is(err, errRolloutStopped) || !strings.Contains(err.Error(), "paused: awaiting approval") {
		t.Errorf("waitFor a rollout awaiting approval = %v, want a failure with the reason", err)
	}
}
