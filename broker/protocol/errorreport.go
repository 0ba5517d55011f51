package protocol

// Error severities, as Bugsnag names them.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
	SeverityInfo    = "info"
)

// ErrorReport is an error or crash report on {root}/{id}/up/error. After a panic the device
// sends it at the next boot, with the reset reason and, when a core dump is in flash, its
// summary. The server groups reports by type, message and firmware version and forwards them
// to Bugsnag.
type ErrorReport struct {
	Message         string    `json:"message"`
	Type            string    `json:"type"`           // e.g. "panic", "abort", "assert", "task_wdt", "app"
	Code            string    `json:"code,omitempty"` // e.g. "ESP_ERR_NO_MEM" or "0x101"
	Severity        string    `json:"severity"`       // defaults to "error"
	Backtrace       []Frame   `json:"backtrace,omitempty"`
	ResetReason     string    `json:"reset_reason,omitempty"`
	FirmwareVersion string    `json:"firmware_version"`
	UptimeMS        int64     `json:"uptime_ms,omitempty"`
	FreeHeap        int64     `json:"free_heap,omitempty"`
	CoreDump        *CoreDump `json:"core_dump,omitempty"`
}

// Frame is one backtrace frame. PC is required; the rest is there when the device (or a
// symbolising step) knows it.
type Frame struct {
	PC   string `json:"pc"` // "0x400d1a2b"
	SP   string `json:"sp,omitempty"`
	Func string `json:"func,omitempty"`
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
}

// CoreDump summarises a core dump found in flash (esp_core_dump_get_summary). Size, when not
// 0, is the length of the whole core dump the device keeps until the server asks for it
// (command coredump).
type CoreDump struct {
	Task    string `json:"task,omitempty"`
	Cause   string `json:"cause,omitempty"`
	Summary string `json:"summary,omitempty"`
	Size    int64  `json:"size,omitempty"`
}

// DecodeErrorReport decodes an error payload.
func DecodeErrorReport(data []byte) (ErrorReport, error) {
	o, err := open(KindError, data, MaxErrorSize)
	if err != nil {
		return ErrorReport{}, err
	}
	e := ErrorReport{
		Message:         o.str("message", true, MaxErrorMessageLength),
		Type:            o.str("type", true, MaxErrorTypeLength),
		Code:            o.str("code", false, MaxErrorTypeLength),
		Severity:        o.enum("severity", false, SeverityError, SeverityWarning, SeverityInfo),
		ResetReason:     o.enum("reset_reason", false, ResetReasons()...),
		FirmwareVersion: o.str("firmware_version", true, MaxAppStringLength),
		UptimeMS:        o.integer("uptime_ms", false, 0, MaxSafeInteger),
		FreeHeap:        o.integer("free_heap", false, 0, MaxSafeInteger),
	}
	if e.Severity == "" {
		e.Severity = SeverityError
	}
	for i, raw := range o.array("backtrace", false, 0, MaxFrames) {
		f := o.r.object(index("backtrace", i), raw)
		e.Backtrace = append(e.Backtrace, Frame{
			PC:   f.check("pc", f.str("pc", true, 18), validAddress, "an address 0x… in lower-case hex"),
			SP:   f.check("sp", f.str("sp", false, 18), validAddress, "an address 0x… in lower-case hex"),
			Func: f.str("func", false, 128),
			File: f.str("file", false, 256),
			Line: int(f.integer("line", false, 0, 1<<31-1)),
		})
	}
	if c, ok := o.child("core_dump", false); ok {
		e.CoreDump = &CoreDump{
			Task:    c.str("task", false, 32),
			Cause:   c.str("cause", false, MaxReasonLength),
			Summary: c.str("summary", false, MaxCoreDumpLength),
			Size:    c.integer("size", false, 0, MaxCoreDumpSize),
		}
	}
	return done(e, o.r)
}

// EncodeErrorReport encodes an error payload.
func EncodeErrorReport(e ErrorReport) ([]byte, error) {
	if e.Severity == "" {
		e.Severity = SeverityError
	}
	return marshal(e, DecodeErrorReport)
}
