package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/devicerrors"
	"github.com/espadmin/espadmin/server/devicerrors/bugsnagtest"
	"github.com/espadmin/espadmin/server/fleet"
	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/server/symbolize/symboltest"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// crashRelease creates a project and a release v-1.0.0 whose image says it was built from
// the ELF file at elfPath, and returns the project's ID and the release's API path.
func crashRelease(t *testing.T, r *errorRig, elfPath string) (projectID, releasePath string) {
	t.Helper()
	elf, err := os.ReadFile(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(elf)
	st, p := r.owner.do("POST", "/api/v1/tenants/alpha/projects", map[string]any{"name": "boilers"})
	if st != http.StatusCreated {
		t.Fatalf("create project: %d %v", st, p)
	}
	projectID = p["id"].(string)
	img := otatest.Image(otatest.ImageOptions{Version: "v-1.0.0", ELFSHA256: sum[:]})
	st, rel := r.owner.upload("/api/v1/tenants/alpha/projects/"+projectID+"/releases?version=v-1.0.0", "application/octet-stream", bytes.NewReader(img))
	if st != http.StatusCreated {
		t.Fatalf("create release: %d %v", st, rel)
	}
	if rel["image"].(map[string]any)["elf_sha256"] != fmt.Sprintf("%x", sum) {
		t.Fatalf("release image %v", rel["image"])
	}
	return projectID, "/api/v1/tenants/alpha/projects/" + projectID + "/releases/" + rel["id"].(string)
}

// crashReport is the report a device sends at the boot after the test program's crash.
func crashReport(message string, crash, ret uint64) protocol.ErrorReport {
	return protocol.ErrorReport{
		Message: message, Type: "panic", ResetReason: "panic", FirmwareVersion: "v-1.0.0",
		Backtrace: []protocol.Frame{{PC: fmt.Sprintf("0x%x", crash), SP: "0x3ffb1230"}, {PC: fmt.Sprintf("0x%x", ret), SP: "0x3ffb1250"}},
	}
}

// stackFuncs lists the functions of a stack answer ("?" for an unresolved frame), with the
// line of each.
func stackFuncs(t *testing.T, stack any) []string {
	t.Helper()
	frames, _ := stack.([]any)
	var out []string
	for _, f := range frames {
		m := f.(map[string]any)
		fn, _ := m["func"].(string)
		if fn == "" {
			fn = "?"
		}
		line, _ := m["line"].(float64)
		out = append(out, fmt.Sprintf("%s:%d", fn, int(line)))
	}
	return out
}

// TestCrashSymbolicated: crash reports of a release are stored raw until its ELF file is
// uploaded (another build's ELF is refused with both hashes), then the error group shows the
// symbolicated stack — the report received before the upload included — with the inlined
// function; two devices with the same crash and different messages are one group (the one
// of the report before the upload); Bugsnag's
// endpoint receives functions, files and lines; a pasted panic log symbolicates against the
// release. The ELF file is a real Xtensa program built now with -g -O2.
func TestCrashSymbolicated(t *testing.T) {
	t.Parallel()
	tc := symboltest.Toolchains[0]
	elfPath := symboltest.Build(t, tc, "")
	other := symboltest.Build(t, tc, strings.Replace(symboltest.Source, "v * 3", "v * 5", 1))
	crash, ret := symboltest.Crash(t, tc, elfPath)
	want := []string{
		fmt.Sprintf("crash_here:%d", symboltest.Line("deref")),
		fmt.Sprintf("handle_request:%d", symboltest.Line("inline-call")),
		fmt.Sprintf("app_main:%d", symboltest.Line("call")),
	}

	bs := bugsnagtest.New(t)
	r := newErrorRig(t, devicerrors.Options{Backoff: 20 * time.Millisecond})
	r.setBugsnag(t, bs.URL+"/notify")
	projectID, release := crashRelease(t, r, elfPath)
	a := r.deviceIn(t, fleet.DeviceInput{Name: "boiler-a", ProjectID: projectID}, "v-1.0.0")
	b := r.deviceIn(t, fleet.DeviceInput{Name: "boiler-b", ProjectID: projectID}, "v-1.0.0")

	// Without the ELF file the report is stored raw.
	publishReport(t, a, crashReport("LoadProhibited", crash, ret))
	poll.Wait(t, "the first report stored", func() bool { return len(r.groups(t, "")) == 1 })
	first := r.groups(t, "")[0]
	detail := r.get(t, "/api/v1/tenants/alpha/errors/"+first["id"].(string))
	if detail["stack_symbolicated"] != false || fmt.Sprint(stackFuncs(t, detail["stack"])) != "[?:0 ?:0]" {
		t.Fatalf("stack before the ELF upload: %v %v", detail["stack_symbolicated"], detail["stack"])
	}
	if st, resp := r.owner.do("POST", release+"/symbolicate", map[string]any{"log": "Backtrace: 0x400d0000:0x3ffb0000"}); st != http.StatusConflict || errCode(t, resp) != "no_elf" {
		t.Fatalf("symbolicate without ELF: %d %v", st, resp)
	}

	// Another build's ELF file is refused, and nothing is stored.
	st, resp := r.owner.send(http.MethodPut, release+"/elf", "application/octet-stream", bytes.NewReader(read(t, other)))
	if st != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(resp), "does not match release v-1.0.0") {
		t.Fatalf("mismatched ELF: %d %v", st, resp)
	}
	if st, _ := r.owner.do("GET", release+"/elf", nil); st != http.StatusNotFound {
		t.Fatalf("GET elf after a refused upload: %d", st)
	}
	st, resp = r.owner.send(http.MethodPut, release+"/elf", "application/octet-stream", bytes.NewReader(read(t, elfPath)))
	if st != http.StatusOK || resp["size"] != float64(len(read(t, elfPath))) {
		t.Fatalf("PUT elf: %d %v", st, resp)
	}

	// The report stored before the upload is symbolicated now, with the inlined frame.
	detail = r.get(t, "/api/v1/tenants/alpha/errors/"+first["id"].(string))
	if detail["stack_symbolicated"] != true || fmt.Sprint(stackFuncs(t, detail["stack"])) != fmt.Sprint(want) {
		t.Fatalf("stack after the ELF upload: %v, want %v", stackFuncs(t, detail["stack"]), want)
	}
	if f := detail["stack"].([]any)[0].(map[string]any); f["inlined"] != true || filepath.Base(f["file"].(string)) != "app.c" {
		t.Fatalf("innermost frame %v", f)
	}

	// Two devices, the same crash, different messages: one group, the one from before the
	// upload once the upload has re-keyed it by function (TestCrashRegroupedAfterELF).
	poll.Wait(t, "the first group re-keyed", func() bool {
		return r.get(t, "/api/v1/tenants/alpha/errors/"+first["id"].(string))["fingerprint"] != first["fingerprint"]
	})
	publishReport(t, a, crashReport("LoadProhibited", crash, ret))
	publishReport(t, b, crashReport("LoadProhibited at 0x00000000", crash, ret))
	poll.Wait(t, "the crash group with both devices", func() bool {
		g := r.groups(t, "")
		return len(g) == 1 && g[0]["count"] == 3.0
	})
	detail = r.get(t, "/api/v1/tenants/alpha/errors/"+first["id"].(string))
	if devs := detail["devices"].([]any); len(devs) != 2 {
		t.Fatalf("devices of the group: %v", devs)
	}

	// Bugsnag receives the symbolicated frames (the first report went raw).
	poll.Wait(t, "three notifications", func() bool { return len(bs.Received()) == 3 })
	for i, p := range bs.Received()[1:] {
		st := p.Events[0].Exceptions[0].Stacktrace
		var got []string
		for _, f := range st {
			got = append(got, fmt.Sprintf("%s:%d", f.Method, f.LineNumber))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || filepath.Base(st[0].File) != "app.c" {
			t.Errorf("notification %d: stack %v (file %s), want %v", i+1, got, st[0].File, want)
		}
	}

	// A pasted panic log, and what bad input gets.
	log := fmt.Sprintf("Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\nBacktrace: 0x%x:0x3ffb1230 0x%x:0x3ffb1250\n", crash, ret)
	st, resp = r.owner.do("POST", release+"/symbolicate", map[string]any{"log": log})
	if st != http.StatusOK || resp["reason"] != "LoadProhibited" || fmt.Sprint(stackFuncs(t, resp["stack"])) != fmt.Sprint(want) {
		t.Fatalf("symbolicate: %d %v", st, resp)
	}
	st, resp = r.owner.do("POST", release+"/symbolicate", map[string]any{"log": "I (312) boot: Loaded app"})
	if st != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(resp), "no backtrace found") {
		t.Fatalf("symbolicate a log without a backtrace: %d %v", st, resp)
	}
}

// TestCrashRegroupedAfterELF: a crash reported before its release's ELF file is grouped by
// address; uploading the ELF file re-keys that group by function (in the background), so the
// same crash reported afterwards by another device counts in the same group — one bug, one
// group, with both devices and the symbolicated stack. The ELF file is a real Xtensa program
// built now with -g -O2.
func TestCrashRegroupedAfterELF(t *testing.T) {
	t.Parallel()
	tc := symboltest.Toolchains[0]
	elfPath := symboltest.Build(t, tc, "")
	crash, ret := symboltest.Crash(t, tc, elfPath)
	want := []string{
		fmt.Sprintf("crash_here:%d", symboltest.Line("deref")),
		fmt.Sprintf("handle_request:%d", symboltest.Line("inline-call")),
		fmt.Sprintf("app_main:%d", symboltest.Line("call")),
	}
	r := newErrorRig(t, devicerrors.Options{})
	projectID, release := crashRelease(t, r, elfPath)
	a := r.deviceIn(t, fleet.DeviceInput{Name: "boiler-a", ProjectID: projectID}, "v-1.0.0")
	b := r.deviceIn(t, fleet.DeviceInput{Name: "boiler-b", ProjectID: projectID}, "v-1.0.0")

	before := crashReport("LoadProhibited", crash, ret)
	publishReport(t, a, before)
	poll.Wait(t, "the report before the ELF upload", func() bool { return len(r.groups(t, "")) == 1 })
	group := r.groups(t, "")[0]
	id := group["id"].(string)
	byAddress := devicerrors.StackFingerprint("panic", "v-1.0.0", before.Backtrace, nil, false)
	byFunction := devicerrors.StackFingerprint("panic", "v-1.0.0", before.Backtrace,
		[]symbolize.Frame{{Func: "crash_here"}, {Func: "handle_request"}, {Func: "app_main"}}, true)
	if group["fingerprint"] != byAddress {
		t.Fatalf("group before the ELF upload: %v, want the address key %s", group, byAddress)
	}

	if st, resp := r.owner.send(http.MethodPut, release+"/elf", "application/octet-stream", bytes.NewReader(read(t, elfPath))); st != http.StatusOK {
		t.Fatalf("PUT elf: %d %v", st, resp)
	}
	poll.Wait(t, "the group re-keyed by function", func() bool {
		return r.get(t, "/api/v1/tenants/alpha/errors/"+id)["fingerprint"] == byFunction
	})

	publishReport(t, b, crashReport("LoadProhibited at 0x00000000", crash, ret))
	poll.Wait(t, "the report after the ELF upload counted", func() bool {
		var n float64
		for _, g := range r.groups(t, "") {
			n += g["count"].(float64)
		}
		return n == 2
	})
	groups := r.groups(t, "")
	if len(groups) != 1 || groups[0]["id"] != id || groups[0]["count"] != 2.0 {
		t.Fatalf("groups after the ELF upload: %v, want only %s with count 2", groups, id)
	}
	detail := r.get(t, "/api/v1/tenants/alpha/errors/"+id)
	var devices []string
	for _, d := range detail["devices"].([]any) {
		devices = append(devices, d.(map[string]any)["device_id"].(string))
	}
	slices.Sort(devices)
	wantDevices := []string{a.ID(), b.ID()}
	slices.Sort(wantDevices)
	if !slices.Equal(devices, wantDevices) {
		t.Errorf("devices of the group: %v, want %v", devices, wantDevices)
	}
	if detail["stack_symbolicated"] != true || fmt.Sprint(stackFuncs(t, detail["stack"])) != fmt.Sprint(want) {
		t.Errorf("stack of the group: %v %v, want %v", detail["stack_symbolicated"], stackFuncs(t, detail["stack"]), want)
	}
	if detail["first_seen"] != group["first_seen"] {
		t.Errorf("first seen %v, want the first report's %v", detail["first_seen"], group["first_seen"])
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testCoreDumpKey signs core dump upload URLs in the server tests.
var testCoreDumpKey = bytes.Repeat([]byte{5}, 32)

// TestCoreDumpUpload: a crash report announcing a whole core dump gets a coredump command with
// a signed upload URL; the upload stores it only with the right signature and exactly the
// announced size (403, 413, 400 otherwise, nothing stored), then the group shows it uploaded
// and hands out a download URL that serves the same bytes; an expired URL is refused.
func TestCoreDumpUpload(t *testing.T) {
	t.Parallel()
	r := newErrorRig(t, devicerrors.Options{Backoff: 20 * time.Millisecond})
	d := r.device(t, "boiler", "v-1.0.0")
	core := bytes.Repeat([]byte("core dump "), 100) // 1000 bytes
	rep := crashReport("StoreProhibited", 0x400d2f5e, 0x400d1c40)
	rep.CoreDump = &protocol.CoreDump{Task: "main", Cause: "StoreProhibited", Size: int64(len(core))}
	publishReport(t, d, rep)

	var uploadURL string
	poll.Wait(t, "the coredump command", func() bool {
		page, err := r.h.st.ListCommands(t.Context(), r.tenantID, store.CommandFilter{DeviceID: d.ID()}, store.ListOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Items {
			if c.Name == protocol.CommandCoreDump {
				cmd, err := protocol.DecodeCommand([]byte(c.Payload))
				if err != nil {
					t.Fatal(err)
				}
				uploadURL = cmd.CoreDump.URL
				return true
			}
		}
		return false
	})
	put := func(u string, body []byte) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tampered := strings.Replace(uploadURL, "size=1000", "size=2000", 1)
	for _, c := range []struct {
		name string
		url  string
		body []byte
		want int
	}{
		{"another size signed by no one", tampered, append(core, core...), http.StatusForbidden},
		{"more than announced", uploadURL, append(core, 'x'), http.StatusRequestEntityTooLarge},
		{"less than announced", uploadURL, core[:999], http.StatusBadRequest},
	} {
		if st, resp := put(c.url, c.body); st != c.want {
			t.Fatalf("%s: %d %v, want %d", c.name, st, resp, c.want)
		} else {
			errCode(t, resp)
		}
	}
	group := r.groups(t, "")[0]
	detail := r.get(t, "/api/v1/tenants/alpha/errors/"+group["id"].(string))
	report := detail["recent_reports"].([]any)[0].(map[string]any)
	if report["core_dump_uploaded"] == true {
		t.Fatal("a refused upload counts as uploaded")
	}
	dl := "/api/v1/tenants/alpha/errors/" + group["id"].(string) + "/reports/" + report["id"].(string) + "/coredump"
	if st, _ := r.owner.do("GET", dl, nil); st != http.StatusNotFound {
		t.Fatalf("download before the upload: %d", st)
	}

	if st, resp := put(uploadURL, core); st != http.StatusCreated || resp["size"] != 1000.0 {
		t.Fatalf("upload: %d %v", st, resp)
	}
	detail = r.get(t, "/api/v1/tenants/alpha/errors/"+group["id"].(string))
	if detail["recent_reports"].([]any)[0].(map[string]any)["core_dump_uploaded"] != true {
		t.Fatalf("report after the upload: %v", detail["recent_reports"])
	}
	got := r.get(t, dl)
	resp, err := http.Get(got["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, core) || got["size"] != 1000.0 {
		t.Fatalf("download: %d, %d bytes, %v", resp.StatusCode, len(b), got)
	}

	// A day later the URL no longer takes anything.
	r.h.fleet.clock.offset.Add(int64(devicerrors.CoreDumpTTL + time.Minute))
	if st, resp := put(uploadURL, core); st != http.StatusForbidden || !strings.Contains(fmt.Sprint(resp), "expired") {
		t.Fatalf("expired upload: %d %v", st, resp)
	}
}
