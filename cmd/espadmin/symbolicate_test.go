package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/server/ota/otatest"
	"github.com/espadmin/espadmin/server/symbolize/symboltest"
)

// TestReleaseELFAndSymbolicate: release push --elf uploads the build's ELF file beside the
// image (another build's file is refused, the release stays), and release symbolicate turns
// a pasted panic log into functions and lines with it, through a real espadmin serve. The
// ELF files are RISC-V programs built now with -g -O2.
func TestReleaseELFAndSymbolicate(t *testing.T) {
	tc := symboltest.Toolchains[1]
	elf := symboltest.Build(t, tc, "")
	other := symboltest.Build(t, tc, strings.Replace(symboltest.Source, "v * 3", "v * 5", 1))
	crash, ret := symboltest.Crash(t, tc, elf)
	srv := startReleaseServer(t)
	b, err := os.ReadFile(elf)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, v := range []string{"v-2.0.0", "v-2.0.1"} {
		write(v+".bin", otatest.Image(otatest.ImageOptions{Version: v, ChipID: 0x0005, ELFSHA256: sum[:]}))
	}
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	common := []string{"--server", srv.url, "--token", srv.token, "--project", "thermostat"}

	out, err := cli(append([]string{"release", "push", "--version", "v-2.0.0", "--elf", other, filepath.Join(dir, "v-2.0.0.bin")}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "release v-2.0.0 was stored but its ELF file was not") || !strings.Contains(err.Error(), "does not match release v-2.0.0") {
		t.Fatalf("push with another build's ELF: %v\n%s", err, out)
	}
	if out, err = cli(append([]string{"release", "push", "--version", "v-2.0.1", "--elf", elf, filepath.Join(dir, "v-2.0.1.bin")}, common...)...); err != nil {
		t.Fatalf("push with the ELF: %v\n%s", err, out)
	}

	log := write("panic.log", fmt.Appendf(nil, "Guru Meditation Error: Core  0 panic'ed (Load access fault). Exception was unhandled.\n\nCore  0 register dump:\nMEPC    : 0x%08x  RA      : 0x%08x  SP      : 0x3fc8f0e0  GP      : 0x3fc8b600\n", crash, ret))
	out, err = cli(append([]string{"release", "symbolicate", "--version", "v-2.0.1", log}, common...)...)
	if err != nil {
		t.Fatalf("symbolicate: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Load access fault\n",
		fmt.Sprintf("0x%x: crash_here at ", crash), fmt.Sprintf("app.c:%d (inlined)\n", symboltest.Line("deref")),
		fmt.Sprintf("0x%x: handle_request at ", crash), fmt.Sprintf("app.c:%d\n", symboltest.Line("inline-call")),
		fmt.Sprintf("0x%x: app_main at ", ret), fmt.Sprintf("app.c:%d\n", symboltest.Line("call")),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("symbolicate output lacks %q:\n%s", want, out)
		}
	}
	// The release whose ELF was refused has none: a clear 409.
	out, err = cli(append([]string{"release", "symbolicate", "--version", "v-2.0.0", log}, common...)...)
	if err == nil || !strings.Contains(err.Error(), "has no ELF file") {
		t.Fatalf("symbolicate without ELF: %v\n%s", err, out)
	}
}
