package fleet

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/store"
	"github.com/espadmin/espadmin/store/seal"
	"github.com/espadmin/espadmin/tests/testkit/testclock"
)

// memStore is the part of the store the presence and sweeper tests reach, in memory, so that
// they run inside a synctest bubble without a database's own goroutines. Calls it does not
// implement panic through the nil embedded Store.
type memStore struct {
	Store
	mu      sync.Mutex
	tenants []store.Tenant
	devices map[string]string // device ID → tenant ID
	// lookupTime is how long DeviceAuth takes.
	lookupTime time.Duration
	presence   []presenceWrite
	sweeps     []sweepCall
}

type presenceWrite struct {
	deviceID string
	online   bool
	at       time.Time // the report's time, as stored
	written  time.Time // when the write happened
}

type sweepCall struct {
	tenantID string
	now      time.Time
	at       time.Time
}

func (m *memStore) DeviceAuth(_ context.Context, id string) (store.DeviceAuth, error) {
	<-time.After(m.lookupTime) // a slow database, on the bubble's clock
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.devices[id]
	if !ok {
		return store.DeviceAuth{}, store.ErrNotFound
	}
	return store.DeviceAuth{DeviceID: id, TenantID: t}, nil
}

func (m *memStore) SetDevicePresence(_ context.Context, _, id string, p store.Presence) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.presence = append(m.presence, presenceWrite{deviceID: id, online: p.Online, at: p.ChangedAt, written: time.Now()})
	return nil
}

func (m *memStore) TouchDevices(context.Context, string, []string, time.Time) error { return nil }

func (m *memStore) AddDeviceSample(context.Context, store.DeviceSample) error { return nil }

func (m *memStore) PendingCommands(context.Context, string, string, time.Time) ([]store.Command, error) {
	return nil, nil
}

func (m *memStore) ListTenants(_ context.Context, opts store.ListOptions) (store.Page[store.Tenant], error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var after []store.Tenant
	for _, t := range m.tenants {
		if t.ID > opts.Cursor {
			after = append(after, t)
		}
	}
	if len(after) > opts.PageSize() {
		return store.Page[store.Tenant]{Items: after[:opts.PageSize()], NextCursor: after[opts.PageSize()-1].ID}, nil
	}
	return store.Page[store.Tenant]{Items: after}, nil
}

func (m *memStore) ExpireCommands(_ context.Context, tenantID string, now time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweeps = append(m.sweeps, sweepCall{tenantID: tenantID, now: now, at: time.Now()})
	return 2, nil
}

func (m *memStore) presenceWrites() []presenceWrite {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]presenceWrite(nil), m.presence...)
}

func (m *memStore) sweepCalls() []sweepCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sweepCall(nil), m.sweeps...)
}

// connTable is a broker connection table the test sets.
type connTable struct {
	loopBus
	mu     sync.Mutex
	online map[string]bool
}

func (c *connTable) Online(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.online[id]
}

func (c *connTable) set(id string, online bool) {
	c.mu.Lock()
	c.online[id] = online
	c.mu.Unlock()
}

// TestPresenceDelayTimers drives the ingestion worker's presence rules on a fake clock: an
// online status waits PresenceDelay; an offline within the delay is the previous session's
// will and is dropped; with a broker connection table, an offline of a connected device is
// looked at again after offlineRecheck.
func TestPresenceDelayTimers(t *testing.T) {
	const delay = 2 * time.Second
	const dev = "dev-1"
	type report struct {
		after  time.Duration // since the start
		online bool
	}
	type write struct {
		online  bool
		at      time.Duration // the report's time
		earlies time.Duration // not written before this
		latest  time.Duration // written by this
	}
	tick := delay / 4 // the worker's ticker when PresenceDelay/4 < offlineRecheck/2 does not hold
	tick = min(tick, offlineRecheck/2)
	cases := []struct {
		name      string
		conns     bool
		connected bool // the connection table's answer
		lookup    time.Duration
		reports   []report
		want      []write
		staleWill float64
	}{
		{name: "online waits for the delay",
			reports: []report{{0, true}},
			want:    []write{{online: true, at: 0, earlies: delay, latest: delay + tick}}},
		{name: "a will within the delay is the old session's",
			reports: []report{{0, true}, {delay / 2, false}},
			want:    []write{{online: true, at: 0, earlies: delay, latest: delay + tick}}, staleWill: 1},
		{name: "a will queued behind a slow lookup is still the old session's",
			// The worker is busy for longer than the delay with the online's lookup; the will
			// waits in its queue while the ticker fires.
			lookup:  delay + delay/2,
			reports: []report{{0, true}, {delay / 4, false}},
			want:    []write{{online: true, at: 0, earlies: delay + delay/2, latest: delay + delay/2 + tick}}, staleWill: 1},
		{name: "an offline after the delay is applied at once",
			reports: []report{{0, true}, {3 * delay, false}},
			want: []write{
				{online: true, at: 0, earlies: delay, latest: delay + tick},
				{online: false, at: 3 * delay, earlies: 3 * delay, latest: 3 * delay},
			}},
		{name: "a second online does not restart the delay",
			reports: []report{{0, true}, {delay / 2, true}},
			want:    []write{{online: true, at: 0, earlies: delay, latest: delay + tick}}},
		{name: "connection table: online of a connected device at once", conns: true, connected: true,
			reports: []report{{0, true}},
			want:    []write{{online: true, at: 0, earlies: 0, latest: 0}}},
		{name: "connection table: offline of a connected device is dropped after the recheck", conns: true, connected: true,
			reports: []report{{0, false}}, staleWill: 1},
		{name: "connection table: offline of a disconnected device at once", conns: true,
			reports: []report{{0, false}},
			want:    []write{{online: false, at: 0, earlies: 0, latest: 0}}},
	}
	for _, c := range cases {
		// The worker picks between its queue and its ticker at random when both are ready:
		// run the case where that matters often enough that a wrong order shows.
		runs := 1
		if c.lookup > 0 {
			runs = 10
		}
		for range runs {
			t.Run(c.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					st := &memStore{devices: map[string]string{dev: "tenant-1"}, lookupTime: c.lookup}
					bus := &connTable{online: map[string]bool{dev: c.connected}}
					m := NewMetrics(nil)
					hub := NewHub(nil)
					opts := IngestOptions{Store: st, Hub: hub, Metrics: m, PresenceDelay: delay, Workers: 1, TouchInterval: time.Hour}
					if c.conns {
						opts.Bus = bus
					} else {
						opts.Bus = &bus.loopBus
					}
					opts.Commands = NewCommands(CommandsOptions{Store: st, Bus: opts.Bus, Root: protocol.DefaultRoot, Hub: hub, Metrics: m})
					in := NewIngest(opts)
					ctx, cancel := context.WithCancel(t.Context())
					done := make(chan struct{})
					go func() { defer close(done); _ = in.Run(ctx) }()
					synctest.Wait()

					start := time.Now()
					for _, r := range c.reports {
						testclock.AdvanceTo(start.Add(r.after))
						payload := protocol.WillPayload
						if r.online {
							payload = `{"v":1,"online":true}`
						}
						bus.up(dev, protocol.KindStatus, payload)
						synctest.Wait()
					}
					testclock.AdvanceTo(start.Add(4 * delay))
					cancel()
					<-done

					got := st.presenceWrites()
					if len(got) != len(c.want) {
						t.Fatalf("presence writes = %+v, want %d", got, len(c.want))
					}
					for i, w := range c.want {
						g := got[i]
						if g.online != w.online || !g.at.Equal(store.Timestamp(start.Add(w.at))) {
							t.Errorf("write %d = online %v at %s, want online %v at +%s", i, g.online, g.at.Sub(start), w.online, w.at)
						}
						if since := g.written.Sub(start); since < w.earlies || since > w.latest {
							t.Errorf("write %d (online %v) happened at +%s, want from +%s to +%s", i, g.online, since, w.earlies, w.latest)
						}
					}
					if n := testutil.ToFloat64(m.Presence.WithLabelValues("stale_will")); n != c.staleWill {
						t.Errorf("stale wills counted = %v, want %v", n, c.staleWill)
					}
				})
			})
		}
	}
}

// TestCommandSweeper runs the expiry sweeper on a fake clock: every SweepInterval it visits
// one page of tenants with the current time, continues with the next page on the next tick
// and starts over after the last.
func TestCommandSweeper(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &memStore{tenants: []store.Tenant{{ID: "t1"}, {ID: "t2"}, {ID: "t3"}}}
		m := NewMetrics(nil)
		hub := NewHub(nil)
		sub := hub.Subscribe("t2", 16)
		defer sub.Close()
		const interval = 10 * time.Second
		c := NewCommands(CommandsOptions{Store: st, Bus: &loopBus{}, Hub: hub, Metrics: m, SweepInterval: interval, SweepTenants: 2})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- c.Run(ctx) }()

		testclock.Advance(interval - time.Millisecond)
		if calls := st.sweepCalls(); len(calls) != 0 {
			t.Fatalf("swept %+v before the first interval passed", calls)
		}
		testclock.AdvanceTo(start.Add(3*interval + time.Millisecond))
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}

		want := []struct {
			tenant string
			tick   int
		}{{"t1", 1}, {"t2", 1}, {"t3", 2}, {"t1", 3}, {"t2", 3}}
		calls := st.sweepCalls()
		if len(calls) != len(want) {
			t.Fatalf("sweeps = %+v, want %d", calls, len(want))
		}
		for i, w := range want {
			at := start.Add(time.Duration(w.tick) * interval)
			if calls[i].tenantID != w.tenant || !calls[i].at.Equal(at) || !calls[i].now.Equal(store.Timestamp(at)) {
				t.Errorf("sweep %d = tenant %s at +%s with now +%s, want tenant %s at tick %d",
					i, calls[i].tenantID, calls[i].at.Sub(start), calls[i].now.Sub(start), w.tenant, w.tick)
			}
		}
		if n := testutil.ToFloat64(m.CommandsExpired); n != 2*float64(len(want)) {
			t.Errorf("expired commands counted = %v, want %v", n, 2*len(want))
		}
		events := 0
		for len(sub.Events()) > 0 {
			if e := <-sub.Events(); e.Type == EventCommandsExpired {
				events++
			}
		}
		if events != 2 {
			t.Errorf("tenant t2 got %d expiry events, want 2", events)
		}
	})
}

// failingCreates fails the n-th CreateCommand made through it or through its transactions.
type failingCreates struct {
	store.Store
	failAt int
	calls  *int
}

var errCreate = errors.New("create failed on purpose")

func (s failingCreates) CreateCommand(ctx context.Context, c *store.Command) error {
	*s.calls++
	if *s.calls == s.failAt {
		return errCreate
	}
	return s.Store.CreateCommand(ctx, c)
}

func (s failingCreates) Atomic(ctx context.Context, fn func(tx store.Store) error) error {
	return s.Store.Atomic(ctx, func(tx store.Store) error {
		return fn(failingCreates{Store: tx, failAt: s.failAt, calls: s.calls})
	})
}

// TestSendStoresAllOrNothing: when one command of a batch cannot be stored, none is, and
// none is counted.
func TestSendStoresAllOrNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t)
	kr, _ := seal.NewKeyring(bytes.Repeat([]byte{1}, 32))
	tn := store.Tenant{Slug: "t", Name: "T"}
	if err := st.CreateTenant(ctx, &tn); err != nil {
		t.Fatal(err)
	}
	hub := NewHub(nil)
	devs := NewDevices(DevicesOptions{Store: st, Keyring: kr, Hub: hub})
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		p, err := devs.Create(ctx, tn.ID, DeviceInput{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.Device.ID)
	}
	calls := 0
	m := NewMetrics(nil)
	cmds := NewCommands(CommandsOptions{Store: failingCreates{Store: st, failAt: 3, calls: &calls}, Bus: &loopBus{},
		Root: protocol.DefaultRoot, Hub: hub, Metrics: m})
	_, err := cmds.Send(ctx, tn.ID, SendRequest{Name: protocol.CommandRestart, Target: Target{DeviceIDs: ids}})
	if !errors.Is(err, errCreate) {
		t.Fatalf("Send = %v, want the store's error", err)
	}
	page, err := st.ListCommands(ctx, tn.ID, store.CommandFilter{}, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 0 {
		t.Errorf("a failed Send left %d commands behind", len(page.Items))
	}
	if n := testutil.ToFloat64(m.CommandsCreated.WithLabelValues(protocol.CommandRestart)); n != 0 {
		t.Errorf("a failed Send counted %v commands", n)
	}

	calls = 0
	sent, err := cmds.Send(ctx, tn.ID, SendRequest{Name: protocol.CommandRestart, Target: Target{DeviceIDs: ids[:2]}})
	if err != nil || len(sent) != 2 {
		t.Fatalf("Send of two = %d commands, %v", len(sent), err)
	}
	if n := testutil.ToFloat64(m.CommandsCreated.WithLabelValues(protocol.CommandRestart)); n != 2 {
		t.Errorf("commands counted = %v, want 2", n)
	}
}
