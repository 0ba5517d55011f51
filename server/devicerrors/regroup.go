package devicerrors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
)

// Defaults and bounds of RegroupOptions.
const (
	// DefaultRegroupQueue is how many releases may wait for their groups to be re-keyed.
	DefaultRegroupQueue = 64
	// DefaultRegroupTimeout bounds one release's re-keying.
	DefaultRegroupTimeout = 10 * time.Minute
	// maxRegroupGroups bounds the groups of one release that one re-keying looks at.
	maxRegroupGroups = 10000
)

// RegroupStore is what re-keying needs from the store.
type RegroupStore interface {
	ListErrorGroups(ctx context.Context, tenantID string, f store.ErrorGroupFilter, opts store.ListOptions) (store.Page[store.ErrorGroup], error)
	ListErrorReports(ctx context.Context, tenantID, groupID, deviceID string, opts store.ListOptions) (store.Page[store.ErrorReport], error)
	SetErrorGroupFingerprint(ctx context.Context, tenantID, id, fingerprint string) error
}

// RegroupOptions configure the Regrouper. Zero values take the defaults.
type RegroupOptions struct {
	Store RegroupStore
	// Symbols symbolicates the stored backtraces with the release's new ELF file (ota.Service).
	Symbols Symbolizer
	// Queue bounds the releases waiting; Timeout bounds one release's re-keying.
	Queue   int
	Timeout time.Duration
	Logger  *slog.Logger
}

// Regrouper re-keys a release's crash groups when its ELF file arrives. A crash report that
// came before the ELF file was grouped by the addresses of its top frames (StackFingerprint
// without symbols); the same crash afterwards is keyed by function names. Without re-keying
// one bug would show as two groups. For each group of the release's project and firmware
// version whose fingerprint is the address key of its newest report's backtrace, the
// backtrace is symbolicated and the group takes the function key, so later reports of the
// crash count in it, with its history. When a group with the function key exists already (a
// report arrived between the upload and the re-keying) both stay as they are: groups are not
// merged.
//
// The work runs on Run's goroutine, off the upload's request: a project may have many groups.
// Every replica runs one; the replica that stored the ELF file re-keys. Re-keying twice is
// harmless (a re-keyed group no longer has the address key). What a restart leaves undone,
// ingestion does for each crash that comes again (Service.adoptAddressGroup).
type Regrouper struct {
	o     RegroupOptions
	queue chan store.Release
}

// NewRegrouper makes the Regrouper; Run works through what Queue asks for.
func NewRegrouper(o RegroupOptions) *Regrouper {
	if o.Queue <= 0 {
		o.Queue = DefaultRegroupQueue
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultRegroupTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Regrouper{o: o, queue: make(chan store.Release, o.Queue)}
}

// Queue asks for the crash groups of release r to be re-keyed, once its ELF file is stored. It
// never blocks the upload: when the queue is full the release is logged and left (its groups
// stay keyed by address until the ELF file is uploaded again).
func (g *Regrouper) Queue(r store.Release) {
	select {
	case g.queue <- r:
	default:
		g.o.Logger.Warn("error groups not re-keyed: queue full", "tenant_id", r.TenantID, "project_id", r.ProjectID,
			"release_id", r.ID, "version", r.Version)
	}
}

// Run re-keys the queued releases' groups, one release at a time, until ctx ends.
func (g *Regrouper) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case r := <-g.queue:
			g.regroupLogged(ctx, r)
		}
	}
}

func (g *Regrouper) regroupLogged(ctx context.Context, r store.Release) {
	ctx, cancel := context.WithTimeout(ctx, g.o.Timeout)
	defer cancel()
	log := g.o.Logger.With("tenant_id", r.TenantID, "project_id", r.ProjectID, "release_id", r.ID, "version", r.Version)
	res, err := g.Regroup(ctx, r)
	if err != nil {
		log.Warn("re-key error groups by the release's ELF file", "regrouped", res.Regrouped, "left", res.Left, "error", err)
		return
	}
	if res.Regrouped > 0 || res.Left > 0 {
		log.Info("error groups re-keyed by the release's ELF file", "regrouped", res.Regrouped, "left", res.Left)
	}
}

// RegroupResult counts what one release's re-keying did.
type RegroupResult struct {
	// Regrouped groups took the function key; Left groups kept the address key because a
	// group with the function key exists.
	Regrouped, Left int
}

// Regroup re-keys the crash groups of release r now (Run calls it for what Queue asks for).
// An error (the store's, loading the symbols, ctx) ends the release's re-keying; the groups
// re-keyed until then stay re-keyed, and res counts them.
func (g *Regrouper) Regroup(ctx context.Context, r store.Release) (RegroupResult, error) {
	var res RegroupResult
	groups, byFingerprint, err := g.releaseGroups(ctx, r)
	if err != nil {
		return res, err
	}
	for _, eg := range groups {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		frames, err := g.newestBacktrace(ctx, eg)
		if err != nil {
			return res, err
		}
		if len(frames) == 0 || StackFingerprint(eg.Type, eg.FirmwareVersion, frames, nil, false) != eg.Fingerprint {
			continue // keyed by function already, or not a crash group
		}
		sym, ok, err := g.o.Symbols.SymbolicateFrames(ctx, r.TenantID, r.ProjectID, r.Version, frames)
		if err != nil {
			return res, fmt.Errorf("devicerrors: symbolicate: %w", err)
		}
		if !ok {
			return res, nil // the release or its ELF file went away since
		}
		fn := StackFingerprint(eg.Type, eg.FirmwareVersion, frames, sym, true)
		if fn == eg.Fingerprint {
			continue // no frame resolved to a function
		}
		if other, taken := byFingerprint[fn]; taken {
			g.leave(eg, other, fn)
			res.Left++
			continue
		}
		err = g.o.Store.SetErrorGroupFingerprint(ctx, eg.TenantID, eg.ID, fn)
		switch {
		case errors.Is(err, store.ErrConflict):
			g.leave(eg, "", fn)
			res.Left++
		case errors.Is(err, store.ErrNotFound):
			// deleted since it was listed
		case err != nil:
			return res, err
		default:
			byFingerprint[fn] = eg.ID
			res.Regrouped++
		}
	}
	return res, nil
}

// releaseGroups lists the groups of r's project and firmware version (at most
// maxRegroupGroups), with their IDs by fingerprint (to name the group a re-keyed one would
// collide with: fingerprints hash the firmware version).
func (g *Regrouper) releaseGroups(ctx context.Context, r store.Release) ([]store.ErrorGroup, map[string]string, error) {
	var groups []store.ErrorGroup
	byFingerprint := map[string]string{}
	opts := store.ListOptions{Limit: store.MaxPageSize}
	for {
		page, err := g.o.Store.ListErrorGroups(ctx, r.TenantID, store.ErrorGroupFilter{ProjectID: r.ProjectID}, opts)
		if err != nil {
			return nil, nil, err
		}
		for _, eg := range page.Items {
			if eg.FirmwareVersion != r.Version {
				continue
			}
			byFingerprint[eg.Fingerprint] = eg.ID
			groups = append(groups, eg)
		}
		if len(groups) > maxRegroupGroups || len(groups) == maxRegroupGroups && page.NextCursor != "" {
			g.o.Logger.Warn("error groups of a release not all re-keyed: too many", "tenant_id", r.TenantID,
				"release_id", r.ID, "version", r.Version, "limit", maxRegroupGroups)
			return groups[:maxRegroupGroups], byFingerprint, nil
		}
		if page.NextCursor == "" {
			return groups, byFingerprint, nil
		}
		opts.Cursor = page.NextCursor
	}
}

// newestBacktrace is the backtrace of a group's newest report as stored (raw, as the device
// sent it); nil when the group has no report left (errors.retention) or no backtrace.
func (g *Regrouper) newestBacktrace(ctx context.Context, eg store.ErrorGroup) ([]protocol.Frame, error) {
	page, err := g.o.Store.ListErrorReports(ctx, eg.TenantID, eg.ID, "", store.ListOptions{Limit: 1, Desc: true})
	if err != nil || len(page.Items) == 0 || page.Items[0].Stack == "" {
		return nil, err
	}
	var frames []protocol.Frame
	if err := json.Unmarshal([]byte(page.Items[0].Stack), &frames); err != nil {
		return nil, nil // not a backtrace this server stored
	}
	return frames, nil
}

// leave logs a group that keeps its address key because the function key is taken.
func (g *Regrouper) leave(eg store.ErrorGroup, otherID, fingerprint string) {
	g.o.Logger.Info("error group kept its address key: a group with its function key exists", "tenant_id", eg.TenantID,
		"group_id", eg.ID, "other_group_id", otherID, "fingerprint", fingerprint)
}

// adoptAddressGroup re-keys, as a crash report comes in, the group its crash was filed under
// before the release's ELF file arrived (keyed by address) to the function key fn the report
// has now, unless a group has that key already. The Regrouper does this for every group of a
// release when its ELF file is uploaded, but its queue lives on the replica that took the
// upload, until a restart; with this, a crash that happens again never splits into two
// groups, whichever replica takes it. The address group must be of the report's project.
func (s *Service) adoptAddressGroup(ctx context.Context, tenantID, projectID string, r protocol.ErrorReport, fn string) {
	addr := StackFingerprint(r.Type, r.FirmwareVersion, r.Backtrace, nil, false)
	known := tenantID + "\x00" + fn
	if addr == fn || s.keyed.Contains(known) {
		return
	}
	group := func(f store.ErrorGroupFilter) (store.ErrorGroup, bool, error) {
		page, err := s.o.Store.ListErrorGroups(ctx, tenantID, f, store.ListOptions{Limit: 1})
		if err != nil || len(page.Items) == 0 {
			return store.ErrorGroup{}, false, err
		}
		return page.Items[0], true, nil
	}
	log := s.o.Logger.With("tenant_id", tenantID, "project_id", projectID, "firmware", r.FirmwareVersion)
	if _, ok, err := group(store.ErrorGroupFilter{Fingerprint: fn}); err != nil {
		log.Warn("look up a crash group by function key", "error", err)
		return
	} else if ok {
		s.keyed.Add(known, struct{}{})
		return
	}
	eg, ok, err := group(store.ErrorGroupFilter{Fingerprint: addr, ProjectID: projectID})
	if err != nil {
		log.Warn("look up a crash group by address key", "error", err)
		return
	}
	if ok {
		err := s.o.Store.SetErrorGroupFingerprint(ctx, tenantID, eg.ID, fn)
		switch {
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			// another replica took the crash first: the report counts in the function group
		case err != nil:
			log.Warn("re-key a crash group by function", "group_id", eg.ID, "error", err)
			return
		default:
			log.Info("crash group re-keyed by function as its crash came again", "group_id", eg.ID)
		}
	}
	s.keyed.Add(known, struct{}{})
}
