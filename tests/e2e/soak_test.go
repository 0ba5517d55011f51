//go:build soak

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/espadmin/espadmin/cmd/espadmin/sim"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// TestSoak is the delivery soak benchmark of docs/benchmarks.md, not part of the normal suite:
//
//	go test -tags soak -run TestSoak -timeout 60m -v ./tests/e2e
//
// ESPADMIN_SOAK_DEVICES (default 1000) simulated devices stay connected to "espadmin serve" on
// PostgreSQL for ESPADMIN_SOAK_DURATION (default 10m) while commands (debug on and off,
// restarts, config changes) go to random devices, random devices lose their connection
// without DISCONNECT every second, and PostgreSQL is frozen once for ESPADMIN_SOAK_OUTAGE
// (default 20s) at 40 % of the run. Then the devices get time to drain what is pending and
// every command the API accepted is looked up: each must be acknowledged (succeeded or
// failed), superseded by a newer config, or still pending, never expired or missing. The
// counts per state are logged.
func TestSoak(t *testing.T) {
	devices := envInt(t, "ESPADMIN_SOAK_DEVICES", 1000)
	duration := envDuration(t, "ESPADMIN_SOAK_DURATION", 10*time.Minute)
	outage := envDuration(t, "ESPADMIN_SOAK_OUTAGE", 20*time.Second)

	pg := testsvc.NewPausablePostgres(t)
	s := startServerOn(t, repoRoot(t), pg.URL)
	api := &soakAPI{s: s, c: &http.Client{Timeout: 15 * time.Second}}

	start := time.Now()
	ids := make([]string, 0, devices)
	fl := make([]*sim.Device, 0, devices)
	for i := range devices {
		b := createDevice(t, s, fmt.Sprintf("soak-%04d", i))
		d, err := sim.NewDevice(sim.Options{Bundle: b, ReconnectDelay: 500 * time.Millisecond, LogLinesPerSecond: 20})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.DeviceID)
		fl = append(fl, d)
	}
	t.Logf("created %d devices in %v", devices, time.Since(start).Round(time.Second))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, d := range fl {
		d.Start(ctx)
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, d := range fl {
			wg.Add(1)
			go func() { defer wg.Done(); d.Stop() }()
		}
		wg.Wait()
	})
	poll.State(t, time.Second, 5*time.Minute, "every device connected", func() (bool, string) {
		n := 0
		for _, d := range fl {
			if d.Connected() {
				n++
			}
		}
		return n == devices, fmt.Sprintf("%d connected", n)
	})

	// The load: commands, config changes, disconnects, one outage.
	var (
		mu       sync.Mutex
		accepted = map[string]string{} // command ID → device ID
		refused  atomic.Int64          // requests the API did not accept (during the outage)
		kills    atomic.Int64
		configs  atomic.Int64
	)
	runCtx, stopRun := context.WithTimeout(ctx, duration)
	defer stopRun()
	var wg sync.WaitGroup
	every := func(interval time.Duration, fn func(r *rand.Rand)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(interval)))
			tk := time.NewTicker(interval)
			defer tk.Stop()
			for {
				select {
				case <-runCtx.Done():
					return
				case <-tk.C:
					fn(r)
				}
			}
		}()
	}
	pick := func(r *rand.Rand, n int) []string {
		out := make([]string, 0, n)
		for _, i := range r.Perm(len(ids))[:n] {
			out = append(out, ids[i])
		}
		return out
	}
	every(2*time.Second, func(r *rand.Rand) {
		var body map[string]any
		switch x := r.IntN(10); {
		case x < 3:
			body = map[string]any{"name": "restart", "params": map[string]any{"reason": "soak"}}
		case x < 7:
			body = map[string]any{"name": "debug", "params": map[string]any{"enabled": true, "duration_s": 5}}
		default:
			body = map[string]any{"name": "debug", "params": map[string]any{"enabled": false}}
		}
		targets := pick(r, 20)
		body["target"] = map[string]any{"device_ids": targets}
		var sent struct {
			Items []struct {
				ID       string `json:"id"`
				DeviceID string `json:"device_id"`
			} `json:"items"`
		}
		if !api.do("POST", "/commands", body, http.StatusAccepted, &sent) {
			refused.Add(1)
			return
		}
		mu.Lock()
		for _, c := range sent.Items {
			accepted[c.ID] = c.DeviceID
		}
		mu.Unlock()
	})
	every(time.Second, func(r *rand.Rand) {
		id := ids[r.IntN(len(ids))]
		var e struct {
			Version int64 `json:"version"`
		}
		if !api.do("GET", "/devices/"+id+"/config/interval", nil, http.StatusOK, &e) {
			e.Version = 0
		}
		if api.do("PUT", "/devices/"+id+"/config/interval", map[string]any{"type": "int", "value": r.IntN(1000), "version": e.Version}, http.StatusOK, nil) {
			configs.Add(1)
		} else {
			refused.Add(1)
		}
	})
	every(time.Second, func(r *rand.Rand) {
		for _, i := range r.Perm(len(fl))[:3] {
			fl[i].Kill()
			kills.Add(1)
		}
	})
	// The outage, from the test's goroutine (Pause and Resume may fail the test).
	select {
	case <-runCtx.Done():
	case <-time.After(duration * 4 / 10):
		t.Logf("database outage: frozen for %v", outage)
		pg.Pause(t)
		<-time.After(outage) // the outage's length
		pg.Resume(t)
		t.Logf("database back")
	}
	wg.Wait()
	t.Logf("load done after %v: %d commands accepted, %d requests refused, %d config changes, %d disconnects",
		duration, len(accepted), refused.Load(), configs.Load(), kills.Load())

	// Drain: devices stay connected until nothing is pending (or 5 minutes pass).
	var states map[string]int
	var byID map[string]string
	drainStart := time.Now()
	survey := time.NewTicker(15 * time.Second) // a survey is 1,000 requests: not too often
	defer survey.Stop()
	for {
		states, byID = soakStates(t, api, ids)
		if states["queued"]+states["delivered"] == 0 || time.Since(drainStart) > 5*time.Minute {
			break
		}
		t.Logf("draining: %v", states)
		<-survey.C
	}
	t.Logf("drained in %v", time.Since(drainStart).Round(time.Second))

	var missing, lost int
	for id := range accepted {
		switch byID[id] {
		case "":
			missing++
		case "expired":
			lost++
		}
	}
	var st sim.Stats
	for _, d := range fl {
		x := d.Stats()
		st.Connects += x.Connects
		st.Commands += x.Commands
		st.Duplicates += x.Duplicates
		st.Acks += x.Acks
		st.Restarts += x.Restarts
	}
	keys := make([]string, 0, len(states))
	for k := range states {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var report strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&report, " %s=%d", k, states[k])
	}
	t.Logf("SOAK RESULT: devices=%d duration=%v outage=%v accepted=%d stored=%d:%s", devices, duration, outage, len(accepted), len(byID), report.String())
	t.Logf("SOAK DEVICES: connects=%d commands_received=%d duplicates=%d acks=%d restarts=%d", st.Connects, st.Commands, st.Duplicates, st.Acks, st.Restarts)
	for _, m := range []string{
		`espadmin_mqtt_messages_dropped_total{reason="rate_limited"}`,
		`espadmin_mqtt_messages_dropped_total{reason="client_queue_full"}`,
		`espadmin_mqtt_confirmed_messages_total{outcome="handled"}`,
		`espadmin_mqtt_confirmed_messages_total{outcome="retried"}`,
		`espadmin_mqtt_confirmed_messages_total{outcome="withheld"}`,
		`espadmin_mqtt_inflight_dropped_total`,
		`espadmin_command_acks_total{outcome="succeeded"}`,
		`espadmin_command_acks_total{outcome="duplicate"}`,
		`espadmin_ingest_dropped_total{reason="store_error"}`,
		`espadmin_ingest_dropped_total{reason="queue_full"}`,
	} {
		t.Logf("SOAK METRIC: %s %v", m, metric(t, s, m))
	}
	if missing != 0 || lost != 0 {
		t.Errorf("%d accepted commands missing, %d expired", missing, lost)
	}
}

// soakStates counts every device's commands by state and maps each command to its state.
func soakStates(t *testing.T, api *soakAPI, ids []string) (map[string]int, map[string]string) {
	t.Helper()
	counts := map[string]int{}
	byID := map[string]string{}
	for _, id := range ids {
		cursor := ""
		for {
			var page struct {
				Items []struct {
					ID    string `json:"id"`
					State string `json:"state"`
				} `json:"items"`
				NextCursor string `json:"next_cursor"`
			}
			path := "/devices/" + id + "/commands?limit=500"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			if !api.do("GET", path, nil, http.StatusOK, &page) {
				t.Fatalf("list commands of %s failed", id)
			}
			for _, c := range page.Items {
				counts[c.State]++
				byID[c.ID] = c.State
			}
			if page.NextCursor == "" {
				break
			}
			cursor = page.NextCursor
		}
	}
	return counts, byID
}

// soakAPI calls the API without failing the test: during the outage requests fail.
type soakAPI struct {
	s *server
	c *http.Client
}

func (a *soakAPI) do(method, path string, body any, want int, out any) bool {
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return false
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, a.s.url+"/api/v1/tenants/"+tenant+path, r)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+a.s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != want {
		return false
	}
	return out == nil || json.Unmarshal(b, out) == nil
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}
