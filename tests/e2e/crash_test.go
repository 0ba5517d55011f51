package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/server/devicerrors/bugsnagtest"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/server/symbolize/symboltest"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestCrashReports: two devices running the firmware's Linux agent "panic" with the same
// backtrace (--panic-backtrace), reboot and report the crash; "espadmin serve" symbolicates
// it with the release's ELF file (a real Xtensa program built now with -g -O2, matched to the
// image by its SHA-256), shows the stack with the inlined function on the error group, counts
// both devices in one group, and Bugsnag's endpoint receives the frames. Then each device
// uploads its whole core dump to the signed URL the server sent, erases it, and the API hands
// it out.
func TestCrashReports(t *testing.T) {
	root := repoRoot(t)
	tc := symboltest.Toolchains[0]
	elfPath := symboltest.Build(t, tc, "")
	crash, ret := symboltest.Crash(t, tc, elfPath)
	elf, err := os.ReadFile(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	agentBin := buildAgent(t, root)
	srv := startServer(t, root)
	bs := bugsnagtest.New(t)
	// Bugsnag settings need settings:manage, which only an admin token carries.
	out := runCLI(t, buildEspadmin(t, root), cleanEnv(), "", "token", "create", "--email", "e2e@example.com", "--tenant", tenant,
		"--name", "e2e-admin", "--scopes", "admin", "--data-dir", srv.dataDir)
	admin := *srv
	admin.token = strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	admin.must(t, "PUT", "/settings/bugsnag", map[string]any{"api_key": "00112233445566778899aabbccddeeff", "notify_url": bs.URL + "/notify"}, http.StatusOK, nil)

	var project struct {
		ID string `json:"id"`
	}
	srv.must(t, "POST", "/projects", map[string]any{"name": "boilers"}, http.StatusCreated, &project)
	sum := sha256.Sum256(elf)
	releaseID := uploadRelease(t, srv, project.ID, "v-1.0.0", otatest.Image(otatest.ImageOptions{Version: "v-1.0.0", ELFSHA256: sum[:]}))
	srv.must(t, "PUT", "/projects/"+project.ID+"/releases/"+releaseID+"/elf", elf, http.StatusOK, nil)

	backtrace := fmt.Sprintf("0x%08x:0x3ffb1230 0x%08x:0x3ffb1250", crash, ret)
	var agents []*agentProc
	t.Cleanup(func() {
		if t.Failed() {
			for i, ag := range agents {
				t.Logf("agent %d stderr (end):\n%s", i, tail(ag.stderr.String(), 60))
			}
		}
	})
	for _, name := range []string{"boiler-1", "boiler-2"} {
		var created struct {
			Provisioning json.RawMessage `json:"provisioning"`
		}
		srv.must(t, "POST", "/devices", map[string]any{"name": name, "project_id": project.ID}, http.StatusCreated, &created)
		bundle := filepath.Join(t.TempDir(), "bundle.json")
		if err := os.WriteFile(bundle, created.Provisioning, 0o600); err != nil {
			t.Fatal(err)
		}
		ag := newAgent(t, agentBin, bundle)
		ag.start(t, "--panic-backtrace", backtrace, "--panic-reason", "LoadProhibited")
		agents = append(agents, ag)
	}

	type frame struct {
		Func    string `json:"func"`
		File    string `json:"file"`
		Line    int    `json:"line"`
		Inlined bool   `json:"inlined"`
	}
	var groups struct {
		Items []struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Message string `json:"message"`
			Count   int    `json:"count"`
		} `json:"items"`
	}
	poll.State(t, checkEvery, waitTimeout, "one error group with both crashes", func() (bool, string) {
		srv.must(t, "GET", "/errors", nil, http.StatusOK, &groups)
		return len(groups.Items) == 1 && groups.Items[0].Count == 2, fmt.Sprintf("%+v", groups.Items)
	})
	g := groups.Items[0]
	if g.Type != "panic" || g.Message != "LoadProhibited" {
		t.Errorf("group %+v", g)
	}
	var detail struct {
		Devices []struct {
			DeviceID string `json:"device_id"`
		} `json:"devices"`
		Stack             []frame `json:"stack"`
		StackSymbolicated bool    `json:"stack_symbolicated"`
	}
	srv.must(t, "GET", "/errors/"+g.ID, nil, http.StatusOK, &detail)
	want := []frame{
		{Func: "crash_here", Line: symboltest.Line("deref"), Inlined: true},
		{Func: "handle_request", Line: symboltest.Line("inline-call")},
		{Func: "app_main", Line: symboltest.Line("call")},
	}
	if len(detail.Devices) != 2 || !detail.StackSymbolicated || len(detail.Stack) != len(want) {
		t.Fatalf("group detail %+v", detail)
	}
	for i, w := range want {
		f := detail.Stack[i]
		if f.Func != w.Func || f.Line != w.Line || f.Inlined != w.Inlined || filepath.Base(f.File) != "app.c" {
			t.Errorf("frame %d: %+v, want %+v in app.c", i, f, w)
		}
	}

	poll.State(t, checkEvery, waitTimeout, "both crashes at Bugsnag", func() (bool, string) {
		return len(bs.Received()) == 2, fmt.Sprintf("%d notifications", len(bs.Received()))
	})
	for i, p := range bs.Received() {
		st := p.Events[0].Exceptions[0].Stacktrace
		if len(st) != 3 || st[0].Method != "crash_here" || st[0].LineNumber != want[0].Line || st[2].Method != "app_main" {
			t.Errorf("notification %d: stack %+v", i, st)
		}
	}
	// Each report announced the whole core dump (24 KiB, more than an MQTT report carries):
	// the server asked for it, the agents uploaded it to the signed URL and erased it then.
	for i, ag := range agents {
		poll.State(t, checkEvery, waitTimeout, fmt.Sprintf("agent %d uploaded and erased its core dump", i), func() (bool, string) {
			_, err1 := os.Stat(filepath.Join(ag.stateDir, "coredump.json"))
			_, err2 := os.Stat(filepath.Join(ag.stateDir, "coredump.bin"))
			return os.IsNotExist(err1) && os.IsNotExist(err2), fmt.Sprint(err1, err2)
		})
	}
	var reports struct {
		Recent []struct {
			ID       string `json:"id"`
			Uploaded bool   `json:"core_dump_uploaded"`
			CoreDump struct {
				Size int64 `json:"size"`
			} `json:"core_dump"`
		} `json:"recent_reports"`
	}
	srv.must(t, "GET", "/errors/"+g.ID, nil, http.StatusOK, &reports)
	if len(reports.Recent) != 2 {
		t.Fatalf("reports %+v", reports.Recent)
	}
	for _, rep := range reports.Recent {
		if !rep.Uploaded || rep.CoreDump.Size != 24576 {
			t.Fatalf("report %+v", rep)
		}
		var dl struct {
			URL  string `json:"url"`
			Size int64  `json:"size"`
		}
		srv.must(t, "GET", "/errors/"+g.ID+"/reports/"+rep.ID+"/coredump", nil, http.StatusOK, &dl)
		resp, err := http.Get(dl.URL)
		if err != nil {
			t.Fatal(err)
		}
		core, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(core) != 24576 || !strings.HasPrefix(string(core), "ESPADMIN SIMULATED CORE DUMP\nreason: LoadProhibited\n") {
			t.Fatalf("core dump download: %d, %d bytes, %.60q", resp.StatusCode, len(core), core)
		}
	}
}
