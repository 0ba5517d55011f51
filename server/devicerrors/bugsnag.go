package devicerrors

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/bugsnag/bugsnag-go"
	bugsnagerrors "github.com/bugsnag/bugsnag-go/errors"

	"github.com/espadmin/espadmin/broker/protocol"
)

// notifierKey identifies one bugsnag-go Notifier: one per API key and endpoint.
type notifierKey struct{ apiKey, notifyURL string }

// notifier sends reports with one bugsnag-go Notifier.
type notifier struct {
	bn *bugsnag.Notifier
}

// notifierFor returns the cached notifier of dst's key and endpoint. The cache grows with
// the keys in use (a few per tenant at most).
func (s *Service) notifierFor(dst destination) *notifier {
	k := notifierKey{dst.apiKey, dst.notifyURL}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.notifiers[k]; n != nil {
		return n
	}
	registerClassOverride()
	// bugsnag.New copies the package configuration and applies ours on top; unlike
	// bugsnag.Configure it neither installs panicwrap (which would re-execute the process)
	// nor changes anything global. Sessions are never started, so the sessions endpoint is
	// never called; it is set only to keep bugsnag-go from warning about it.
	n := &notifier{bn: bugsnag.New(bugsnag.Configuration{
		APIKey:              dst.apiKey,
		Endpoints:           bugsnag.Endpoints{Notify: dst.notifyURL, Sessions: dst.notifyURL},
		AppType:             "esp32",
		AutoCaptureSessions: false,
		Synchronous:         true,
		ProjectPackages:     []string{"**"},
		Transport:           s.transport,
		Logger:              slogPrintf{s.o.Logger},
		PanicHandler:        func() {},
	})}
	s.notifiers[k] = n
	return n
}

// notify sends j synchronously (the worker retries on error): the device is the user and the
// device (hostname), the firmware is the app version, the backtrace the stack trace, and
// the device's metadata, the report's details and the group are metadata tabs.
func (n *notifier) notify(j job) error {
	r, d := j.report, j.device
	md := bugsnag.MetaData{}
	md.Add("device", "id", d.ID)
	md.Add("device", "name", d.Name)
	if d.ProjectID != "" {
		md.Add("device", "project_id", d.ProjectID)
	}
	if len(d.Tags) > 0 {
		md.Add("device", "tags", strings.Join(d.Tags, ","))
	}
	m := d.Metadata
	for k, v := range map[string]any{
		"firmware_version": m.FirmwareVersion, "chip_model": m.ChipModel, "chip_revision": m.ChipRevision,
		"idf_version": m.IDFVersion, "mac": m.MAC, "ip": m.IP, "rssi": m.RSSI, "free_heap": m.FreeHeap,
		"uptime_s": m.UptimeSeconds, "reset_reason": m.ResetReason, "config_version": m.ConfigVersion,
	} {
		md.Add("metadata", k, v)
	}
	md.Add("error", "type", r.Type)
	if r.Code != "" {
		md.Add("error", "code", r.Code)
	}
	if r.ResetReason != "" {
		md.Add("error", "reset_reason", r.ResetReason)
	}
	md.Add("error", "uptime_ms", r.UptimeMS)
	md.Add("error", "free_heap", r.FreeHeap)
	md.Add("error", "group_id", j.group.ID)
	if c := r.CoreDump; c != nil {
		md.Add("core_dump", "task", c.Task)
		md.Add("core_dump", "cause", c.Cause)
		md.Add("core_dump", "summary", c.Summary)
	}
	sev := bugsnag.SeverityError
	switch r.Severity {
	case "warning":
		sev = bugsnag.SeverityWarning
	case "info":
		sev = bugsnag.SeverityInfo
	}
	return n.bn.NotifySync(&deviceError{report: r}, true,
		bugsnag.Configuration{AppVersion: r.FirmwareVersion, ReleaseStage: j.dst.releaseStage, Hostname: d.ID},
		bugsnag.User{Id: d.ID, Name: d.Name},
		bugsnag.Context{String: r.Type},
		deviceClass(r.Type),
		sev, md,
	)
}

// deviceError is the report as an error with the device's backtrace as its stack frames
// (bugsnag-go's ErrorWithStackFrames), so Bugsnag shows the device's stack, not ours.
type deviceError struct {
	report protocol.ErrorReport
}

func (e *deviceError) Error() string { return e.report.Message }

// StackFrames converts the backtrace. A frame without a symbol is shown by its address.
func (e *deviceError) StackFrames() []bugsnagerrors.StackFrame {
	out := make([]bugsnagerrors.StackFrame, 0, len(e.report.Backtrace))
	for _, f := range e.report.Backtrace {
		pc, _ := strconv.ParseUint(strings.TrimPrefix(f.PC, "0x"), 16, 64)
		name := f.Func
		if name == "" {
			name = f.PC
		}
		file := f.File
		if file == "" {
			file = f.PC
		}
		out = append(out, bugsnagerrors.StackFrame{File: file, LineNumber: f.Line, Name: name, ProgramCounter: uintptr(pc)})
	}
	return out
}

// deviceClass carries the device's error type as Bugsnag's error class. bugsnag-go v1.5.0
// applies its own ErrorClass before reading the error (which then overwrites the class
// with the Go type name), so a before-notify callback applies this one last.
type deviceClass string

var classOverrideOnce sync.Once

// registerClassOverride installs, once per process, the callback that applies deviceClass.
// It only acts on events carrying a deviceClass, so other users of bugsnag-go in the
// process are unaffected.
func registerClassOverride() {
	classOverrideOnce.Do(func() {
		bugsnag.OnBeforeNotify(func(ev *bugsnag.Event, _ *bugsnag.Configuration) error {
			for _, d := range ev.RawData {
				if c, ok := d.(deviceClass); ok {
					ev.ErrorClass = string(c)
				}
			}
			return nil
		})
	})
}

// slogPrintf adapts slog to bugsnag-go's logger, at debug level: failures are logged by the
// service once all attempts have failed.
type slogPrintf struct{ log *slog.Logger }

func (l slogPrintf) Printf(format string, v ...any) {
	l.log.Debug("bugsnag-go", "message", fmt.Sprintf(format, v...))
}
