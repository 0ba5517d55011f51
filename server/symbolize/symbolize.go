// Package symbolize turns the program counters of an ESP32 backtrace into functions, files
// and lines, with the frames of inlined functions, from the firmware's ELF file and its DWARF
// debug information (Go's debug/elf and debug/dwarf; no external tool).
//
// It reads ELF files for Xtensa (ESP32, ESP32-S2/S3; the ESP8266's lx106) and RISC-V
// (ESP32-C2/C3/C5/C6/H2/P4). A Table is built once per ELF file and then answers lookups
// from memory, so a server keeps a few tables in a cache rather than the files.
//
// The addresses ESP-IDF prints and sends are already what addr2line wants: on Xtensa the
// panic handler strips the window-size bits and points into the call instruction
// (esp_cpu_process_stack_pc); on RISC-V a caller's frame is a return address, so lookups for
// frames after the first use the address one byte before it, as addr2line users do.
package symbolize

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Arch is the instruction set of an ELF file.
type Arch string

// The architectures of ESP chips.
const (
	Xtensa Arch = "xtensa"
	RISCV  Arch = "riscv"
)

// Frame is one symbolicated frame. Inlined frames come before the function they were
// inlined into, innermost first, and share its PC.
type Frame struct {
	PC       uint64
	SP       uint64 // the stack pointer the device sent with the PC, on the outermost frame of the PC
	Func     string
	File     string
	Line     int
	Inlined  bool // this function was inlined into the next frame
	Resolved bool // the PC lies in a known function
}

// Table answers address lookups for one ELF file.
type Table struct {
	arch  Arch
	funcs []fnRange  // sorted by low
	inl   []inlRange // sorted by low
	lines []lineRow  // sorted by addr; end rows have line 0
	syms  []symRange // ELF symbol table, for code without DWARF; sorted by low
}

type fnRange struct {
	low, high uint64
	name      string
}

type inlRange struct {
	low, high uint64
	depth     int
	name      string
	callFile  string
	callLine  int
}

type lineRow struct {
	addr uint64
	file string
	line int // 0 ends a sequence
}

type symRange struct {
	low, high uint64
	name      string
}

// ErrNoDebugInfo means the ELF file has no DWARF line information (it was stripped or built
// without -g).
var ErrNoDebugInfo = errors.New("symbolize: the ELF file has no debug information (build with -g and upload the unstripped ELF)")

// Load reads an ELF file's symbols and DWARF information into a Table.
func Load(r io.ReaderAt) (*Table, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("symbolize: not an ELF file: %w", err)
	}
	defer f.Close()
	t := &Table{}
	switch f.Machine {
	case elf.EM_XTENSA:
		t.arch = Xtensa
	case elf.EM_RISCV:
		t.arch = RISCV
	default:
		return nil, fmt.Errorf("symbolize: the ELF file is for %s, not an ESP32 (Xtensa or RISC-V)", f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return nil, fmt.Errorf("symbolize: the ELF file is %s, not a linked program", f.Type)
	}
	t.loadSymbols(f)
	d, err := f.DWARF()
	if err != nil {
		return nil, ErrNoDebugInfo
	}
	if err := t.loadDWARF(d); err != nil {
		return nil, err
	}
	if len(t.lines) == 0 {
		return nil, ErrNoDebugInfo
	}
	sort.Slice(t.funcs, func(i, j int) bool { return t.funcs[i].low < t.funcs[j].low })
	sort.SliceStable(t.inl, func(i, j int) bool { return t.inl[i].low < t.inl[j].low })
	sort.SliceStable(t.lines, func(i, j int) bool { return t.lines[i].addr < t.lines[j].addr })
	return t, nil
}

// Arch returns the ELF file's instruction set.
func (t *Table) Arch() Arch { return t.arch }

func (t *Table) loadSymbols(f *elf.File) {
	syms, err := f.Symbols()
	if err != nil {
		return
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Name == "" {
			continue
		}
		size := s.Size
		if size == 0 {
			size = 1
		}
		t.syms = append(t.syms, symRange{low: s.Value, high: s.Value + size, name: s.Name})
	}
	sort.Slice(t.syms, func(i, j int) bool { return t.syms[i].low < t.syms[j].low })
}

func (t *Table) loadDWARF(d *dwarf.Data) error {
	rd := d.Reader()
	// names of subprograms by offset, to resolve abstract origins and specifications, which
	// may point forwards; inlined entries are resolved once every CU is read.
	names := map[dwarf.Offset]string{}
	type pendingInl struct {
		origin   dwarf.Offset
		ranges   [][2]uint64
		depth    int
		callFile string
		callLine int
	}
	type pendingFn struct {
		origin dwarf.Offset
		name   string
		ranges [][2]uint64
	}
	var inls []pendingInl
	var fns []pendingFn
	for {
		cu, err := rd.Next()
		if err != nil {
			return fmt.Errorf("symbolize: read DWARF: %w", err)
		}
		if cu == nil {
			break
		}
		if cu.Tag != dwarf.TagCompileUnit {
			rd.SkipChildren()
			continue
		}
		var files []*dwarf.LineFile
		if lr, err := d.LineReader(cu); err == nil && lr != nil {
			files = lr.Files()
			var e dwarf.LineEntry
			for {
				if err := lr.Next(&e); err != nil {
					break
				}
				row := lineRow{addr: e.Address}
				if !e.EndSequence && e.File != nil {
					row.file, row.line = e.File.Name, e.Line
					if row.line == 0 {
						continue
					}
				}
				t.lines = append(t.lines, row)
			}
		}
		if !cu.Children {
			continue
		}
		// Walk the CU's tree, tracking the depth of inlined subroutines.
		depth := 0
		var stack []bool // per open entry with children: was it an inlined subroutine
		for {
			e, err := rd.Next()
			if err != nil {
				return fmt.Errorf("symbolize: read DWARF: %w", err)
			}
			if e == nil {
				break
			}
			if e.Tag == 0 { // end of a children list
				if len(stack) == 0 {
					break
				}
				if stack[len(stack)-1] {
					depth--
				}
				stack = stack[:len(stack)-1]
				continue
			}
			switch e.Tag {
			case dwarf.TagSubprogram:
				name := entryName(e)
				if name != "" {
					names[e.Offset] = name
				}
				ranges, _ := d.Ranges(e)
				origin, _ := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
				if origin == 0 {
					origin, _ = e.Val(dwarf.AttrSpecification).(dwarf.Offset)
				}
				if len(ranges) > 0 {
					fns = append(fns, pendingFn{origin: origin, name: name, ranges: ranges})
				}
			case dwarf.TagInlinedSubroutine:
				ranges, _ := d.Ranges(e)
				origin, _ := e.Val(dwarf.AttrAbstractOrigin).(dwarf.Offset)
				p := pendingInl{origin: origin, ranges: ranges, depth: depth}
				if i, ok := e.Val(dwarf.AttrCallFile).(int64); ok && i >= 0 && int(i) < len(files) && files[i] != nil {
					p.callFile = files[i].Name
				}
				if l, ok := e.Val(dwarf.AttrCallLine).(int64); ok {
					p.callLine = int(l)
				}
				inls = append(inls, p)
			}
			if e.Children {
				isInl := e.Tag == dwarf.TagInlinedSubroutine
				if isInl {
					depth++
				}
				stack = append(stack, isInl)
			}
		}
	}
	for _, f := range fns {
		name := f.name
		if name == "" {
			name = names[f.origin]
		}
		for _, r := range f.ranges {
			t.funcs = append(t.funcs, fnRange{low: r[0], high: r[1], name: name})
		}
	}
	for _, p := range inls {
		for _, r := range p.ranges {
			t.inl = append(t.inl, inlRange{low: r[0], high: r[1], depth: p.depth, name: names[p.origin],
				callFile: p.callFile, callLine: p.callLine})
		}
	}
	return nil
}

// entryName is a DIE's name, preferring the linkage name (C++) reduced to what people read.
func entryName(e *dwarf.Entry) string {
	if n, ok := e.Val(dwarf.AttrName).(string); ok {
		return n
	}
	if n, ok := e.Val(dwarf.AttrLinkageName).(string); ok {
		return n
	}
	return ""
}

// Lookup symbolicates one address: the frames of the functions inlined at pc, innermost
// first, then the function that holds pc. caller says the address is a return address (a
// frame after the first of a backtrace).
func (t *Table) Lookup(pc uint64, caller bool) []Frame {
	addr := t.normalise(pc)
	if caller && t.arch == RISCV && addr > 0 {
		addr--
	}
	file, line := t.line(addr)
	fn := t.function(addr)
	if fn == "" {
		fn = t.symbol(addr)
	}
	if fn == "" && file == "" {
		return []Frame{{PC: pc}}
	}
	// The inlined subroutines that contain addr, deepest first.
	var chain []inlRange
	i := sort.Search(len(t.inl), func(i int) bool { return t.inl[i].low > addr })
	for j := i - 1; j >= 0; j-- {
		r := t.inl[j]
		if addr >= r.low && addr < r.high {
			chain = append(chain, r)
		}
	}
	sort.SliceStable(chain, func(a, b int) bool { return chain[a].depth > chain[b].depth })
	out := make([]Frame, 0, len(chain)+1)
	for _, r := range chain {
		out = append(out, Frame{PC: pc, Func: r.name, File: file, Line: line, Inlined: true, Resolved: true})
		file, line = r.callFile, r.callLine
	}
	out = append(out, Frame{PC: pc, Func: fn, File: file, Line: line, Resolved: fn != ""})
	return out
}

// normalise maps an Xtensa address that still carries the window-size bits of a raw return
// address (0x8…, 0xC…) back into the instruction bus (0x4…).
func (t *Table) normalise(pc uint64) uint64 {
	if t.arch == Xtensa && pc&0xC0000000 != 0x40000000 && pc&0xC0000000 != 0 {
		return pc&0x3FFFFFFF | 0x40000000
	}
	return pc
}

func (t *Table) line(addr uint64) (string, int) {
	i := sort.Search(len(t.lines), func(i int) bool { return t.lines[i].addr > addr })
	if i == 0 {
		return "", 0
	}
	r := t.lines[i-1]
	if r.line == 0 {
		return "", 0
	}
	return r.file, r.line
}

func (t *Table) function(addr uint64) string {
	i := sort.Search(len(t.funcs), func(i int) bool { return t.funcs[i].low > addr })
	for j := i - 1; j >= 0 && j >= i-64; j-- {
		if f := t.funcs[j]; addr >= f.low && addr < f.high {
			return f.name
		}
	}
	return ""
}

func (t *Table) symbol(addr uint64) string {
	i := sort.Search(len(t.syms), func(i int) bool { return t.syms[i].low > addr })
	if i > 0 {
		if s := t.syms[i-1]; addr < s.high {
			return s.name
		}
	}
	return ""
}

// SymbolicateRaw looks up every frame of a backtrace (innermost first), keeping each stack
// pointer on the frame of the function that holds the PC.
func (t *Table) SymbolicateRaw(frames []RawFrame) []Frame {
	var out []Frame
	for i, f := range frames {
		fs := t.Lookup(f.PC, i > 0)
		fs[len(fs)-1].SP = f.SP
		out = append(out, fs...)
	}
	return out
}

// Symbolicate looks up every frame of a backtrace (innermost first).
func (t *Table) Symbolicate(pcs []uint64) []Frame {
	var out []Frame
	for i, pc := range pcs {
		out = append(out, t.Lookup(pc, i > 0)...)
	}
	return out
}

// runtimeFuncs are ESP-IDF and libc functions a panic passes through before or after the
// application's code; they never identify a bug.
var runtimeFuncs = map[string]bool{
	"panic_abort": true, "esp_system_abort": true, "abort": true, "__assert_func": true,
	"esp_panic_handler": true, "panic_handler": true, "xt_unhandled_exception": true,
	"_xt_user_exc": true, "_xt_lowint1": true, "vPortTaskWrapper": true, "prvTaskExitError": true,
	"esp_restart_noos": true, "_esp_error_check_failed": true, "esp_backtrace_print": true,
	"xt_highint4": true, "panicHandler": true, "_frxt_dispatch": true, "vPortAssertIfInISR": true,
	"__ubsan_include": true, "_panic_handler": true, "panic_print_backtrace": true,
	"esp_task_wdt_isr": true, "task_wdt_isr": true, "call_start_cpu0": true, "main_task": true,
}

// Runtime reports whether a frame belongs to the panic machinery of ESP-IDF (or libc), not
// to the application: grouping skips such frames.
func Runtime(f Frame) bool {
	if runtimeFuncs[f.Func] {
		return true
	}
	file := strings.ReplaceAll(f.File, "\\", "/")
	for _, part := range []string{"/esp_system/", "/freertos/", "/newlib/", "/xtensa/", "/riscv/", "/esp_hw_support/"} {
		if strings.Contains(file, "/components"+part) {
			return true
		}
	}
	return false
}
