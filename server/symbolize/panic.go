package symbolize

import (
	"bufio"
	"errors"
	"regexp"
	"strconv"
	"strings"
)

// RawFrame is one frame of a backtrace as the device printed or sent it.
type RawFrame struct {
	PC, SP uint64
}

// PanicLog is what a pasted ESP-IDF panic output says.
type PanicLog struct {
	// Reason is the Guru Meditation line's reason ("LoadProhibited", "Illegal instruction"),
	// or the abort()/assert message.
	Reason string
	// Frames are innermost first: from the "Backtrace:" line (Xtensa, and RISC-V with frame
	// pointers), else MEPC and RA of the RISC-V register dump.
	Frames []RawFrame
	// Corrupted says the backtrace ended with |<-CORRUPTED.
	Corrupted bool
}

var (
	guruRe    = regexp.MustCompile(`Guru Meditation Error: Core\s+\d+ panic'ed \(([^)]*)\)`)
	abortRe   = regexp.MustCompile(`(abort\(\) was called at PC 0x[0-9a-fA-F]+ on core \d+|assert failed: .*)`)
	btPairRe  = regexp.MustCompile(`0x([0-9a-fA-F]{1,16}):0x([0-9a-fA-F]{1,16})`)
	regPairRe = regexp.MustCompile(`\b(MEPC|RA|SP)\s*:\s*0x([0-9a-fA-F]{1,16})`)
)

// ErrNoBacktrace means the text holds neither a "Backtrace:" line nor a RISC-V register dump.
var ErrNoBacktrace = errors.New(`no backtrace found: paste the panic output with its "Backtrace:" line (Xtensa) or its register dump with MEPC and RA (RISC-V)`)

// ParsePanicLog reads the panic output of ESP-IDF's panic handler (as idf.py monitor or a
// serial console shows it):
//
//	Guru Meditation Error: Core  0 panic'ed (LoadProhibited). Exception was unhandled.
//	...
//	Backtrace: 0x400d1a2b:0x3ffb1230 0x400d1c40:0x3ffb1250 |<-CORRUPTED
//
// or, on RISC-V chips, the register dump (MEPC is the faulting PC, RA the caller):
//
//	MEPC    : 0x42000a3c  RA      : 0x42000a20  SP      : 0x3fc8f0e0  GP      : 0x3fc8b600
//
// Only the first panic in the text is read.
func ParsePanicLog(text string) (PanicLog, error) {
	var out PanicLog
	var mepc, ra, sp uint64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if out.Reason == "" {
			if m := guruRe.FindStringSubmatch(line); m != nil {
				out.Reason = m[1]
			} else if m := abortRe.FindStringSubmatch(line); m != nil {
				out.Reason = strings.TrimSpace(m[1])
			}
		}
		if i := strings.Index(line, "Backtrace:"); i >= 0 && len(out.Frames) == 0 {
			rest := line[i+len("Backtrace:"):]
			for _, m := range btPairRe.FindAllStringSubmatch(rest, -1) {
				pc, _ := strconv.ParseUint(m[1], 16, 64)
				s, _ := strconv.ParseUint(m[2], 16, 64)
				out.Frames = append(out.Frames, RawFrame{PC: pc, SP: s})
			}
			out.Corrupted = strings.Contains(rest, "CORRUPTED")
		}
		for _, m := range regPairRe.FindAllStringSubmatch(line, -1) {
			v, _ := strconv.ParseUint(m[2], 16, 64)
			switch m[1] {
			case "MEPC":
				if mepc == 0 {
					mepc = v
				}
			case "RA":
				if ra == 0 {
					ra = v
				}
			case "SP":
				if sp == 0 {
					sp = v
				}
			}
		}
	}
	if len(out.Frames) == 0 && mepc != 0 {
		out.Frames = append(out.Frames, RawFrame{PC: mepc, SP: sp})
		if ra != 0 {
			out.Frames = append(out.Frames, RawFrame{PC: ra})
		}
	}
	// Filter out pairs with a zero PC at the end (the end of a stack).
	for len(out.Frames) > 0 && out.Frames[len(out.Frames)-1].PC == 0 {
		out.Frames = out.Frames[:len(out.Frames)-1]
	}
	if len(out.Frames) == 0 {
		return out, ErrNoBacktrace
	}
	return out, nil
}
