// Package symboltest builds small firmware-like ELF files with Debian's cross compilers
// during a test run (Xtensa: gcc-xtensa-lx106; RISC-V: gcc-riscv64-unknown-elf, for rv32imc as
// on ESP32-C3), and asks the same toolchain's nm and addr2line for the truth to compare with.
//
// A missing compiler skips the test on a developer's machine and fails it in CI (CI=true).
package symboltest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/espadmin/espadmin/server/symbolize"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

// Source is the program every ELF is built from. crash_here is inlined into handle_request
// (always_inline), which app_main calls; the marked lines are what the tests expect.
const Source = `volatile int sink;
volatile int *volatile bad_ptr;

static inline __attribute__((always_inline)) int crash_here(int v)
{
    sink = v * 3;
    return *bad_ptr + v; /* LINE:deref */
}

__attribute__((noinline)) int handle_request(int v)
{
    int r = crash_here(v + 1); /* LINE:inline-call */
    sink = r;
    return r + 7;
}

__attribute__((noinline)) int app_main(void)
{
    int total = 0;
    for (int i = 0; i < 3; i++) {
        total += handle_request(i); /* LINE:call */
    }
    return total;
}

void _start(void)
{
    app_main();
    for (;;) {
    }
}
`

// Line returns the line of Source that carries "LINE:" + marker.
func Line(marker string) int {
	for i, l := range strings.Split(Source, "\n") {
		if strings.Contains(l, "LINE:"+marker+" ") {
			return i + 1
		}
	}
	panic("symboltest: no line marked " + marker)
}

// Toolchain is one cross compiler.
type Toolchain struct {
	Arch   string // "xtensa" or "riscv"
	Prefix string // tool name prefix, e.g. "xtensa-lx106-elf-"
	Flags  []string
}

// Toolchains are the two architectures of ESP chips. The link address of the code is where
// ESP-IDF maps flash code (0x400d0000 on the ESP32, 0x42000000 on the C3).
var Toolchains = []Toolchain{
	{Arch: "xtensa", Prefix: "xtensa-lx106-elf-", Flags: []string{"-mlongcalls", "-Wl,-Ttext=0x400d0020"}},
	{Arch: "riscv", Prefix: "riscv64-unknown-elf-", Flags: []string{"-march=rv32imc", "-mabi=ilp32", "-Wl,-Ttext=0x42000020"}},
}

// Build compiles src (Source when empty) with -g -O2 into an ELF file in a temporary folder
// and returns its path.
func Build(t testing.TB, tc Toolchain, src string) string {
	t.Helper()
	if src == "" {
		src = Source
	}
	cc := tc.Prefix + "gcc"
	if _, err := exec.LookPath(cc); err != nil {
		testsvc.Unavailable(t, "the cross compiler "+cc, err)
	}
	dir := t.TempDir()
	c := filepath.Join(dir, "app.c")
	if err := os.WriteFile(c, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "app.elf")
	args := append([]string{"-g", "-O2", "-ffreestanding", "-nostdlib", "-nostartfiles", "-Wl,-e,_start", "-o", out, c}, tc.Flags...)
	cmd := exec.Command(cc, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("symboltest: %s %s: %v\n%s", cc, strings.Join(args, " "), err, b)
	}
	return out
}

// Symbol returns the address and size of a function, from the toolchain's nm.
func Symbol(t testing.TB, tc Toolchain, elf, name string) (addr, size uint64) {
	t.Helper()
	b, err := exec.Command(tc.Prefix+"nm", "-S", elf).Output()
	if err != nil {
		t.Fatalf("symboltest: nm: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 4 && f[3] == name {
			addr, _ = strconv.ParseUint(f[0], 16, 64)
			size, _ = strconv.ParseUint(f[1], 16, 64)
			return addr, size
		}
	}
	t.Fatalf("symboltest: %s not in %s", name, elf)
	return 0, 0
}

// Addr2lineFrame is one frame addr2line printed.
type Addr2lineFrame struct {
	Func string
	File string
	Line int
}

// Addr2line asks the toolchain's addr2line -f -i for each address (inlined frames first, as
// symbolize returns them).
func Addr2line(t testing.TB, tc Toolchain, elf string, addrs []uint64) [][]Addr2lineFrame {
	t.Helper()
	var in bytes.Buffer
	for _, a := range addrs {
		fmt.Fprintf(&in, "0x%x\n", a)
	}
	// A marker address after each one separates the answers: addr2line prints "??" for it.
	cmd := exec.Command(tc.Prefix+"addr2line", "-f", "-i", "-a", "-e", elf)
	cmd.Stdin = &in
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("symboltest: addr2line: %v", err)
	}
	var out [][]Addr2lineFrame
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], "0x") {
			t.Fatalf("symboltest: unexpected addr2line output %q", lines[i])
		}
		i++
		var frames []Addr2lineFrame
		for i+1 < len(lines) && !strings.HasPrefix(lines[i], "0x") {
			fn, loc := lines[i], lines[i+1]
			i += 2
			fr := Addr2lineFrame{Func: fn}
			if j := strings.LastIndex(loc, ":"); j >= 0 {
				fr.File = loc[:j]
				num := loc[j+1:]
				if k := strings.IndexByte(num, ' '); k >= 0 {
					num = num[:k]
				}
				fr.Line, _ = strconv.Atoi(num)
			}
			frames = append(frames, fr)
		}
		out = append(out, frames)
	}
	if len(out) != len(addrs) {
		t.Fatalf("symboltest: addr2line answered %d addresses of %d", len(out), len(addrs))
	}
	return out
}

// Crash returns two addresses of an ELF file built from Source, found with the symbol table
// itself: crash, in handle_request, where the inlined crash_here dereferences the bad pointer
// (LINE:deref), and ret, in app_main, on its call of handle_request (LINE:call), as the
// return address of a backtrace's second frame.
func Crash(t testing.TB, tc Toolchain, elfPath string) (crash, ret uint64) {
	t.Helper()
	f, err := os.Open(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := symbolize.Load(f)
	if err != nil {
		t.Fatal(err)
	}
	a, size := Symbol(t, tc, elfPath, "handle_request")
	for pc := a; pc < a+size && crash == 0; pc++ {
		if fr := tab.Lookup(pc, false); len(fr) == 2 && fr[0].Func == "crash_here" && fr[0].Line == Line("deref") {
			crash = pc
		}
	}
	m, msize := Symbol(t, tc, elfPath, "app_main")
	for pc := m; pc < m+msize && ret == 0; pc++ {
		if fr := tab.Lookup(pc, true); len(fr) == 1 && fr[0].Line == Line("call") {
			ret = pc
		}
	}
	if crash == 0 || ret == 0 {
		t.Fatalf("symboltest: no crash (0x%x) or return (0x%x) address in %s", crash, ret, elfPath)
	}
	return crash, ret
}
