package symbolize_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/server/symbolize/symboltest"
)

func load(t *testing.T, path string) *symbolize.Table {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := symbolize.Load(f)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return tab
}

// TestMatchesAddr2line symbolicates every address of the application's functions in real ELF
// files built now with -g -O2 and compares function, file, line and inlined frames with the
// same toolchain's addr2line -f -i.
func TestMatchesAddr2line(t *testing.T) {
	for _, tc := range symboltest.Toolchains {
		t.Run(tc.Arch, func(t *testing.T) {
			t.Parallel()
			elf := symboltest.Build(t, tc, "")
			tab := load(t, elf)
			if string(tab.Arch()) != tc.Arch {
				t.Fatalf("arch %q, want %q", tab.Arch(), tc.Arch)
			}
			var addrs []uint64
			for _, fn := range []string{"handle_request", "app_main", "_start"} {
				a, size := symboltest.Symbol(t, tc, elf, fn)
				for pc := a; pc < a+size; pc++ {
					addrs = append(addrs, pc)
				}
			}
			want := symboltest.Addr2line(t, tc, elf, addrs)
			for i, pc := range addrs {
				got := tab.Lookup(pc, false)
				if len(got) != len(want[i]) {
					t.Fatalf("0x%x: %d frames %+v, addr2line %d %+v", pc, len(got), got, len(want[i]), want[i])
				}
				for j, w := range want[i] {
					g := got[j]
					if g.Func != w.Func || filepath.Base(g.File) != filepath.Base(w.File) || g.Line != w.Line {
						t.Fatalf("0x%x frame %d: got %s %s:%d, addr2line %s %s:%d", pc, j, g.Func, g.File, g.Line, w.Func, w.File, w.Line)
					}
					if g.Inlined != (j < len(want[i])-1) {
						t.Fatalf("0x%x frame %d: inlined %v", pc, j, g.Inlined)
					}
				}
			}
		})
	}
}

// TestInlinedFrame finds the dereference that crashes in the inlined crash_here and checks
// the known function and lines of the whole stack: crash_here (inlined) at the dereference,
// handle_request at the inlined call, app_main at its call of handle_request.
func TestInlinedFrame(t *testing.T) {
	for _, tc := range symboltest.Toolchains {
		t.Run(tc.Arch, func(t *testing.T) {
			t.Parallel()
			elf := symboltest.Build(t, tc, "")
			tab := load(t, elf)
			crash, ret := symboltest.Crash(t, tc, elf)
			frames := tab.Lookup(crash, false)
			if !frames[0].Inlined || frames[1].Func != "handle_request" || frames[1].Line != symboltest.Line("inline-call") || frames[1].Inlined {
				t.Fatalf("frames %+v", frames)
			}
			got := tab.Symbolicate([]uint64{crash, ret, 0x12})
			if len(got) != 4 || got[2].Func != "app_main" || got[3].Resolved || got[3].PC != 0x12 {
				t.Fatalf("Symbolicate: %+v", got)
			}
			if filepath.Base(got[0].File) != "app.c" {
				t.Fatalf("file %q", got[0].File)
			}
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	tc := symboltest.Toolchains[1]
	elf := symboltest.Build(t, tc, "")
	stripped := filepath.Join(t.TempDir(), "stripped.elf")
	if b, err := exec.Command(tc.Prefix+"objcopy", "--strip-debug", elf, stripped).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v %s", err, b)
	}
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not an ELF file": {[]byte("hello, this is not an ELF"), "not an ELF file"},
		"stripped":        {read(t, stripped), "no debug information"},
		"host program":    {read(t, os.Args[0]), "not an ESP32"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := symbolize.Load(bytes.NewReader(c.data))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v, want an error with %q", err, c.want)
			}
		})
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

func TestParsePanicLog(t *testing.T) {
	cases := []struct {
		name, text string
		reason     string
		frames     []symbolize.RawFrame
		corrupted  bool
		err        bool
	}{
		{name: "xtensa", text: "Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.\n\nCore  0 register dump:\nPC      : 0x400d1a2b  PS      : 0x00060030\n\nBacktrace: 0x400d1a2b:0x3ffb1230 0x400d1c40:0x3ffb1250 0x40088f6d:0x3ffb1270\n\nELF file SHA256: 0000\n",
			reason: "LoadProhibited", frames: []symbolize.RawFrame{{0x400d1a2b, 0x3ffb1230}, {0x400d1c40, 0x3ffb1250}, {0x40088f6d, 0x3ffb1270}}},
		{name: "corrupted", text: "abort() was called at PC 0x400d2f5e on core 0\r\nBacktrace: 0x4008f0d2:0x3ffbb2a0 0x400d2f5b:0x3ffbb2c0 |<-CORRUPTED\r\n",
			reason: "abort() was called at PC 0x400d2f5e on core 0", frames: []symbolize.RawFrame{{0x4008f0d2, 0x3ffbb2a0}, {0x400d2f5b, 0x3ffbb2c0}}, corrupted: true},
		{name: "riscv", text: "Guru Meditation Error: Core  0 panic'ed (Load access fault). Exception was unhandled.\nCore  0 register dump:\nMEPC    : 0x42000a3c  RA      : 0x42000a20  SP      : 0x3fc8f0e0  GP      : 0x3fc8b600\nA0      : 0x00000000\n",
			reason: "Load access fault", frames: []symbolize.RawFrame{{0x42000a3c, 0x3fc8f0e0}, {0x42000a20, 0}}},
		{name: "nothing", text: "I (312) boot: Loaded app\n", err: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := symbolize.ParsePanicLog(c.text)
			if c.err {
				if err == nil {
					t.Fatalf("no error for %q", c.text)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Reason != c.reason || got.Corrupted != c.corrupted || !slices.Equal(got.Frames, c.frames) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}
