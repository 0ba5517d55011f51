package devicerrors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/server/symbolize"
)

// groupFrames is how many application frames key a crash group: enough to tell two bugs in
// one helper function apart by their callers, few enough that a change deep in the stack
// (another task entry point) does not split one bug.
const groupFrames = 3

// Symbolizer symbolicates a backtrace with the ELF file of the release a device ran
// (ota.Service). ok is false when that release or its ELF file is not there.
type Symbolizer interface {
	SymbolicateFrames(ctx context.Context, tenantID, projectID, version string, frames []protocol.Frame) ([]symbolize.Frame, bool, error)
}

// StackFingerprint groups crash reports that carry a backtrace: SHA-256 over type, firmware
// version and the top application frames, hex. With the release's ELF file the frames are
// named by function, skipping ESP-IDF's panic and abort machinery (symbolize.Runtime), so one
// bug on many devices is one group whatever message each device printed; without it they are
// the top addresses, which name the same code within one firmware version.
func StackFingerprint(typ, firmware string, raw []protocol.Frame, frames []symbolize.Frame, symbolicated bool) string {
	var key []string
	if symbolicated {
		for _, f := range frames {
			if len(key) == groupFrames {
				break
			}
			if f.Func == "" || symbolize.Runtime(f) {
				continue
			}
			key = append(key, "fn:"+f.Func)
		}
	}
	if len(key) == 0 {
		for _, f := range raw {
			if len(key) == groupFrames {
				break
			}
			key = append(key, "pc:"+strings.ToLower(f.PC))
		}
	}
	h := sha256.New()
	for _, part := range []string{"stack", typ, firmware, strings.Join(key, ">")} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// symbolicate looks the report's backtrace up in the ELF file of its release. A failure is
// logged and the report goes on raw: a crash report is never lost for want of symbols.
func (s *Service) symbolicate(ctx context.Context, tenantID, projectID string, r protocol.ErrorReport) ([]symbolize.Frame, bool) {
	if s.o.Symbols == nil || len(r.Backtrace) == 0 {
		return nil, false
	}
	frames, ok, err := s.o.Symbols.SymbolicateFrames(ctx, tenantID, projectID, r.FirmwareVersion, r.Backtrace)
	if err != nil {
		s.o.Logger.Warn("symbolicate backtrace", "tenant_id", tenantID, "project_id", projectID, "firmware", r.FirmwareVersion, "error", err)
		return nil, false
	}
	return frames, ok
}

// ProtocolFrames turns symbolicated frames back into backtrace frames (inlined functions as
// frames of their own, at the same PC), for Bugsnag.
func ProtocolFrames(frames []symbolize.Frame) []protocol.Frame {
	out := make([]protocol.Frame, 0, len(frames))
	for _, f := range frames {
		pf := protocol.Frame{PC: fmt.Sprintf("0x%x", f.PC), Func: f.Func, File: f.File, Line: f.Line}
		if f.SP != 0 {
			pf.SP = fmt.Sprintf("0x%x", f.SP)
		}
		out = append(out, pf)
	}
	return out
}
