package logrelay

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/espadmin/espadmin/broker"
	"github.com/espadmin/espadmin/broker/brokertest"
	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// recordingDebugger records debug commands.
type recordingDebugger struct {
	mu   sync.Mutex
	sent []protocol.DebugParams
}

func (d *recordingDebugger) Debug(_ context.Context, _, _ string, p protocol.DebugParams) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent = append(d.sent, p)
	return nil
}

func (d *recordingDebugger) all() []protocol.DebugParams {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]protocol.DebugParams(nil), d.sent...)
}

// testClock is a clock the test moves.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func newRelay(t *testing.T, bus messaging.Bus, o Options) (*Relay, *recordingDebugger) {
	t.Helper()
	d := &recordingDebugger{}
	o.Bus, o.Debugger = bus, d
	if o.Tick == 0 {
		o.Tick = 5 * time.Millisecond
	}
	r := New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { r.Close(); cancel(); <-done })
	return r, d
}

func publishBatch(t *testing.T, bus messaging.Bus, device string, b protocol.LogBatch) {
	t.Helper()
	payload, err := protocol.EncodeLogBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Publish(t.Context(), messaging.Message{Topic: protocol.Uplink(protocol.DefaultRoot, device, protocol.KindLog), Payload: payload}); err != nil {
		t.Fatal(err)
	}
}

func batch(seq int64, n int) protocol.LogBatch {
	b := protocol.LogBatch{Seq: seq}
	for i := range n {
		b.Lines = append(b.Lines, protocol.LogLine{Level: "info", Tag: "app", Msg: fmt.Sprintf("line %d", seq+int64(i)), MS: seq + int64(i)})
	}
	return b
}

// next reads one frame with a deadline.
func next(t *testing.T, v *Viewer) Frame {
	t.Helper()
	select {
	case f := <-v.Frames():
		return f
	case <-time.After(10 * time.Second):
		t.Fatal("no frame")
	}
	return Frame{}
}

// TestLinesInOrderWithGaps: lines arrive in device order with their sequence numbers; a
// sequence jump and device-side drops are surfaced as gap frames; a reboot (sequence back
// to 0) is not a gap.
func TestLinesInOrderWithGaps(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, _ := newRelay(t, b, Options{})
	v, err := r.Watch(t.Context(), "tenant", "dev-a", "")
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	for range 20 {
		publishBatch(t, b, "dev-a", batch(seq, 10))
		seq += 10
	}
	for want := int64(0); want < seq; {
		f := next(t, v)
		if f.Type != FrameLines {
			t.Fatalf("frame %+v, want lines", f)
		}
		for _, l := range f.Lines {
			if l.Seq != want || l.Msg != fmt.Sprintf("line %d", want) || l.TS != want || l.Level != "info" || l.Tag != "app" {
				t.Fatalf("line %+v, want seq %d", l, want)
			}
			want++
		}
	}
	publishBatch(t, b, "dev-a", batch(seq+5, 1)) // 5 lines lost in transit
	if f := next(t, v); f.Type != FrameGap || f.Reason != "transit" || f.Count != 5 || f.FromSeq != seq {
		t.Errorf("gap frame %+v", f)
	}
	if f := next(t, v); f.Type != FrameLines || f.Lines[0].Seq != seq+5 {
		t.Errorf("after gap %+v", f)
	}
	withDrops := batch(seq+6, 1)
	withDrops.Dropped = 7
	publishBatch(t, b, "dev-a", withDrops)
	if f := next(t, v); f.Type != FrameGap || f.Reason != "device" || f.Count != 7 {
		t.Errorf("device gap %+v", f)
	}
	next(t, v)
	publishBatch(t, b, "dev-a", batch(0, 1)) // rebooted
	if f := next(t, v); f.Type != FrameLines || f.Lines[0].Seq != 0 {
		t.Errorf("after reboot %+v", f)
	}
	// Another device's lines never reach this viewer.
	publishBatch(t, b, "dev-b", batch(0, 1))
	publishBatch(t, b, "dev-a", batch(1, 1))
	if f := next(t, v); f.Lines[0].Seq != 1 || f.Lines[0].Msg != "line 1" {
		t.Errorf("got %+v", f)
	}
}

// TestSlowViewer: a viewer that never reads loses lines (counted, reported by TakeDropped)
// while a fast viewer of the same device misses nothing.
func TestSlowViewer(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, _ := newRelay(t, b, Options{ViewerBuffer: 4})
	slow, _ := r.Watch(t.Context(), "tenant", "dev-a", "")
	fast, _ := r.Watch(t.Context(), "tenant", "dev-a", "")
	const batches, per = 60, 10
	got := make(chan int64, 1)
	var read atomic.Int64
	go func() {
		var n int64
		for n < batches*per {
			select {
			case f := <-fast.Frames():
				for _, l := range f.Lines {
					if l.Seq != n {
						t.Logf("line %+v at %d, frame %+v", l, n, f.Type)
						got <- -1
						return
					}
					n++
				}
				read.Store(n)
			case <-time.After(10 * time.Second):
				got <- n
				return
			}
		}
		got <- n
	}()
	for i := range batches {
		publishBatch(t, b, "dev-a", batch(int64(i*per), per))
		// Pace the device so the fast reader is never more than two batches behind.
		if i >= 2 {
			poll.Wait(t, "fast reader", func() bool { return read.Load() >= int64((i-1)*per) })
		}
	}
	if n := <-got; n != batches*per {
		t.Fatalf("fast viewer got %d lines in order, want %d", n, batches*per)
	}
	// The last batch may reach the slow viewer after the fast one has read it.
	poll.Wait(t, "the slow viewer's drops to be counted", func() bool {
		return testutil.ToFloat64(r.Metrics().ViewerDrops) >= (batches-4)*per
	})
	if d := slow.TakeDropped(); d != (batches-4)*per {
		t.Errorf("slow viewer dropped %d lines, want %d", d, (batches-4)*per)
	}
	if n := testutil.ToFloat64(r.Metrics().ViewerDrops); n != (batches-4)*per {
		t.Errorf("drop metric %v", n)
	}
}

// TestAutoDebug: the first viewer turns debug on at its level, a more verbose viewer raises
// it, debug is renewed before it runs out while viewers remain, and the last viewer leaving
// turns it off.
func TestAutoDebug(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	clock := &testClock{}
	r, d := newRelay(t, b, Options{AutoDebug: true, DebugDuration: 100 * time.Second, Now: clock.Now})
	v1, _ := r.Watch(t.Context(), "tenant", "dev-a", "warn")
	poll.Wait(t, "debug on", func() bool { return len(d.all()) == 1 })
	if p := d.all()[0]; !p.Enabled || p.Level != "warn" || p.DurationS != 100 {
		t.Errorf("first debug %+v", p)
	}
	v2, _ := r.Watch(t.Context(), "tenant", "dev-a", "error") // less verbose: nothing sent
	v3, _ := r.Watch(t.Context(), "tenant", "dev-a", "verbose")
	poll.Wait(t, "raised", func() bool { return len(d.all()) == 2 })
	if p := d.all()[1]; !p.Enabled || p.Level != "verbose" {
		t.Errorf("raised debug %+v", p)
	}
	clock.Advance(89 * time.Second)
	v3.Close()
	clock.Advance(2 * time.Second) // past 90 % of the duration
	poll.Wait(t, "renewal", func() bool { return len(d.all()) == 3 })
	if p := d.all()[2]; !p.Enabled || p.Level != "verbose" || p.DurationS != 100 {
		t.Errorf("renewal %+v", p)
	}
	v1.Close()
	if got := len(d.all()); got != 3 {
		t.Errorf("a viewer leaving while others remain sent debug: %d commands", got)
	}
	v2.Close()
	poll.Wait(t, "debug off", func() bool { return len(d.all()) == 4 })
	if p := d.all()[3]; p.Enabled {
		t.Errorf("last debug %+v", p)
	}
	if r.Viewers("dev-a") != 0 {
		t.Error("viewers left")
	}
	// Without viewers nothing is renewed.
	clock.Advance(time.Hour)
	r.renew()
	if got := len(d.all()); got != 4 {
		t.Errorf("renewed without viewers: %d commands", got)
	}
}

// TestDebugFrames: viewers learn about debug commands anyone publishes to the device, e.g.
// debug off sent through the commands API.
func TestDebugFrames(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, _ := newRelay(t, b, Options{})
	v, _ := r.Watch(t.Context(), "tenant", "dev-a", "")
	for _, on := range []bool{false, true} {
		p := &protocol.DebugParams{Enabled: on, Level: "debug", DurationS: 60}
		payload, err := protocol.EncodeCommand(protocol.Command{ID: "cmd1", Name: protocol.CommandDebug, ExpiresAt: time.Now().Add(time.Hour).UnixMilli(), Debug: p})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(t.Context(), messaging.Message{Topic: protocol.DownlinkCommand(protocol.DefaultRoot, "dev-a"), Payload: payload, QoS: 1}); err != nil {
			t.Fatal(err)
		}
		f := next(t, v)
		if f.Type != FrameDebug || f.Enabled == nil || *f.Enabled != on || (on && f.Level != "debug") {
			t.Errorf("debug frame %+v", f)
		}
	}
}

// TestBadInput: malformed, oversized and invalid log payloads are counted and dropped; the
// stream goes on.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, _ := newRelay(t, b, Options{})
	v, _ := r.Watch(t.Context(), "tenant", "dev-a", "")
	topic := protocol.Uplink(protocol.DefaultRoot, "dev-a", protocol.KindLog)
	bad := [][]byte{
		[]byte("not json"),
		[]byte(`{"v":1,"seq":0,"lines":[]}`),
		[]byte(`{"v":1,"seq":0,"lines":[{"level":"loud","msg":"x","ms":1}]}`),
		[]byte(`{"v":1,"seq":0,"lines":[{"level":"info","msg":"` + strings.Repeat("x", 9000) + `","ms":1}]}`),
	}
	for _, p := range bad {
		if err := b.Publish(t.Context(), messaging.Message{Topic: topic, Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	publishBatch(t, b, "dev-a", batch(0, 1))
	if f := next(t, v); f.Type != FrameLines || f.Lines[0].Msg != "line 0" {
		t.Errorf("frame after bad input %+v", f)
	}
	var invalid float64
	for _, class := range []string{"malformed", "invalid_field", "too_large", "unsupported_version"} {
		invalid += testutil.ToFloat64(r.Metrics().Invalid.WithLabelValues(class))
	}
	if invalid != float64(len(bad)) {
		t.Errorf("invalid counted %v, want %d", invalid, len(bad))
	}
}

// TestClose: closing the relay ends every viewer and turns debug off for watched devices;
// Watch then fails.
func TestClose(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, d := newRelay(t, b, Options{AutoDebug: true})
	v, _ := r.Watch(t.Context(), "tenant", "dev-a", "")
	poll.Wait(t, "debug on", func() bool { return len(d.all()) == 1 })
	r.Close()
	select {
	case <-v.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("viewer not ended")
	}
	poll.Wait(t, "debug off", func() bool { return len(d.all()) == 2 && !d.all()[1].Enabled })
	if _, err := r.Watch(t.Context(), "tenant", "dev-a", ""); err != ErrClosed {
		t.Errorf("watch after close: %v", err)
	}
	v.Close()
}

// TestViewerLevels: the device logs at the most verbose level any viewer asked for; each
// viewer receives only the lines at or below its own level, and nothing when a batch holds
// none of those.
func TestViewerLevels(t *testing.T) {
	t.Parallel()
	b := brokertest.Start(t, brokertest.Options{})
	r, _ := newRelay(t, b, Options{})
	errs, err := r.Watch(t.Context(), "tenant", "dev-a", protocol.LevelError)
	if err != nil {
		t.Fatal(err)
	}
	all, err := r.Watch(t.Context(), "tenant", "dev-a", protocol.LevelVerbose)
	if err != nil {
		t.Fatal(err)
	}
	mixed := protocol.LogBatch{Seq: 0}
	for i, level := range levels {
		mixed.Lines = append(mixed.Lines, protocol.LogLine{Level: level, Tag: "app", Msg: level, MS: int64(i)})
	}
	publishBatch(t, b, "dev-a", mixed)
	publishBatch(t, b, "dev-a", protocol.LogBatch{Seq: 5, Lines: []protocol.LogLine{{Level: protocol.LevelDebug, Tag: "app", Msg: "chatter"}}})
	publishBatch(t, b, "dev-a", protocol.LogBatch{Seq: 6, Lines: []protocol.LogLine{{Level: protocol.LevelError, Tag: "app", Msg: "boom"}}})

	msgs := func(f Frame) (out []string) {
		for _, l := range f.Lines {
			out = append(out, l.Msg)
		}
		return out
	}
	if f := next(t, all); strings.Join(msgs(f), ",") != "error,warn,info,debug,verbose" {
		t.Errorf("verbose viewer, first frame %+v", f)
	}
	if f := next(t, all); strings.Join(msgs(f), ",") != "chatter" {
		t.Errorf("verbose viewer, second frame %+v", f)
	}
	if f := next(t, all); strings.Join(msgs(f), ",") != "boom" {
		t.Errorf("verbose viewer, third frame %+v", f)
	}
	// The error viewer's frames: the one error line of the first batch, then "boom"; the
	// debug-only batch gave it nothing (and is not a gap: its sequence is accounted for).
	if f := next(t, errs); f.Type != FrameLines || strings.Join(msgs(f), ",") != "error" || f.Lines[0].Seq != 0 {
		t.Errorf("error viewer, first frame %+v", f)
	}
	if f := next(t, errs); f.Type != FrameLines || strings.Join(msgs(f), ",") != "boom" || f.Lines[0].Seq != 6 {
		t.Errorf("error viewer, second frame %+v", f)
	}
}

// switchRouter routes every tenant to one bus, which the test can change.
type switchRouter struct{ bus atomic.Pointer[broker.Broker] }

func (s *switchRouter) Route(string) (messaging.Bus, string, bool) {
	return s.bus.Load(), protocol.DefaultRoot, false
}

// TestViewerFollowsBrokerChange: when a tenant's broker changes under an open console (its
// own broker configured, changed, or dropped), the relay moves the device's subscriptions to
// the new broker within a tick and turns debug on again there; the old broker's messages no
// longer reach the viewer.
func TestViewerFollowsBrokerChange(t *testing.T) {
	t.Parallel()
	oldBus, newBus := brokertest.Start(t, brokertest.Options{}), brokertest.Start(t, brokertest.Options{})
	router := &switchRouter{}
	router.bus.Store(oldBus)
	r, debugs := newRelay(t, nil, Options{Router: router, AutoDebug: true})
	v, err := r.Watch(t.Context(), "tenant", "dev-a", "")
	if err != nil {
		t.Fatal(err)
	}
	publishBatch(t, oldBus, "dev-a", batch(0, 1))
	if f := next(t, v); f.Type != FrameLines || f.Lines[0].Seq != 0 {
		t.Fatalf("before the change: %+v", f)
	}
	poll.Wait(t, "debug on through the first broker", func() bool { return len(debugs.all()) == 1 })

	router.bus.Store(newBus)
	poll.Wait(t, "the stream to move to the new broker", func() bool { return testutil.ToFloat64(r.metrics.Rerouted) == 1 })
	poll.Wait(t, "debug on again through the new broker", func() bool {
		all := debugs.all()
		return len(all) == 2 && all[1].Enabled
	})
	publishBatch(t, oldBus, "dev-a", batch(1, 1)) // the old broker is no longer listened to
	publishBatch(t, newBus, "dev-a", batch(2, 1))
	f := next(t, v)
	if f.Type == FrameGap {
		f = next(t, v) // seq 1 never arrived: a transit gap is right
	}
	if f.Type != FrameLines || len(f.Lines) != 1 || f.Lines[0].Seq != 2 {
		t.Fatalf("after the change: %+v, want line 2 from the new broker", f)
	}
	select {
	case f := <-v.Frames():
		t.Errorf("extra frame %+v", f)
	default:
	}
}
