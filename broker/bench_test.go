package broker

// Broker benchmarks, each beside Debian's Mosquitto under the same load (docs/benchmarks.md).
// The clients are minimal raw MQTT 3.1.1 clients (no goroutine while idle), identical for
// both brokers, so rates are measured by the same tool. The idle devices of
// BenchmarkIdleDevices run in a child process (this test binary, TestClientsChild), so
// the embedded broker's memory delta holds none of the clients' memory and the broker
// process holds one descriptor per device, not two; so do those of BenchmarkCommandFanout.
//
//	go test -run XXX -bench . -benchtime 1x ./broker
//	BROKER_BENCH_DEVICES=10000 go test -run XXX -bench 'IdleDevices|CommandFanout' -benchtime 1x -timeout 30m ./broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/espadmin/espadmin/broker/messaging"
	"github.com/espadmin/espadmin/broker/protocol"
	"github.com/espadmin/espadmin/tests/testkit/poll"
	"github.com/espadmin/espadmin/tests/testkit/testsvc"
)

func benchDevices() int {
	if n, err := strconv.Atoi(os.Getenv("BROKER_BENCH_DEVICES")); err == nil && n > 0 {
		return n
	}
	return 2000
}

func raiseFileLimit(b *testing.B) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func deviceID(i int) string { return fmt.Sprintf("dev-%06d", i) }

// benchTarget is a broker under test: where devices connect and how the server side
// publishes and counts.
type benchTarget struct {
	name   string
	addr   string
	rss    func() int64 // resident memory of the broker
	heap   func() int64 // Go heap + stacks of the broker (embedded only)
	stack  func() int64 // goroutine stacks of the broker (embedded only)
	stop   func()
	broker *Broker // embedded only
}

func startEmbedded(b *testing.B, n int) *benchTarget {
	b.Helper()
	cfg := testConfig()
	cfg.MaxClients = n + 100
	cfg.RateLimit, cfg.RateBurst = 1_000_000, 1_000_000
	devs := newFakeDevices()
	for i := 0; i < n; i++ {
		devs.add(deviceID(i), "secret-"+deviceID(i), false)
	}
	br, err := New(cfg, Deps{Devices: devs, Logger: testLogger()})
	if err != nil {
		b.Fatal(err)
	}
	if err := br.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	return &benchTarget{
		name: "espadmin", addr: br.Addr("tcp"), broker: br,
		rss: func() int64 { return procRSS(os.Getpid()) },
		heap: func() int64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return int64(m.HeapInuse + m.StackInuse)
		},
		stack: func() int64 {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return int64(m.StackInuse)
		},
		stop: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := br.Shutdown(ctx); err != nil {
				b.Errorf("shutdown: %v", err)
			}
		},
	}
}

func startMosquitto(b *testing.B, n int) *benchTarget {
	b.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		testsvc.Unavailable(b, "mosquitto", err)
	}
	dir := b.TempDir()
	var pw bytes.Buffer
	fmt.Fprintf(&pw, "server:server-secret\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&pw, "%s:secret-%s\n", deviceID(i), deviceID(i))
	}
	pwFile := filepath.Join(dir, "passwd")
	if err := os.WriteFile(pwFile, pw.Bytes(), 0o600); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("mosquitto_passwd", "-U", pwFile).CombinedOutput(); err != nil {
		testsvc.Unavailable(b, "mosquitto_passwd", fmt.Errorf("%v: %s", err, out))
	}
	acl := "user server\ntopic readwrite #\n\npattern read espadmin/%u/down/#\npattern write espadmin/%u/up/#\n"
	if err := os.WriteFile(filepath.Join(dir, "acl"), []byte(acl), 0o600); err != nil {
		b.Fatal(err)
	}
	port := testsvc.FreePort(b)
	// "user root" keeps Mosquitto from switching to its own user (which cannot read the
	// temp dir) when the benchmark runs as root; it has no effect otherwise.
	conf := fmt.Sprintf("user root\nlistener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\nmax_connections -1\npersistence false\nlog_dest none\nmax_queued_messages 1000\n",
		port, pwFile, filepath.Join(dir, "acl"))
	confFile := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", confFile)
	if err := cmd.Start(); err != nil {
		testsvc.Unavailable(b, "mosquitto", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	b.Cleanup(func() { _ = cmd.Process.Kill() }) // in case it never answers
	poll.Until(b, 10*time.Second, "mosquitto to accept connections", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return &benchTarget{
		name: "mosquitto", addr: addr,
		rss: func() int64 { return procRSS(cmd.Process.Pid) },
		stop: func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		},
	}
}

func procRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// rawClient is a minimal MQTT 3.1.1 client.
type rawClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(addr, id, secret string) (*rawClient, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{
			ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 300, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(id), PasswordFlag: true, Password: []byte(secret),
		},
	}
	_ = pk.ConnectEncode(&buf)
	if _, err := c.Write(buf.Bytes()); err != nil {
		c.Close()
		return nil, err
	}
	rc := &rawClient{c: c, r: bufio.NewReaderSize(c, 512)}
	typ, body, err := rc.next()
	if err != nil || typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		c.Close()
		return nil, fmt.Errorf("connect %s: type %d body % x: %v", id, typ, body, err)
	}
	return rc, nil
}

// next reads one packet: its type and body.
func (rc *rawClient) next() (byte, []byte, error) {
	h, err := rc.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mult := 0, 1
	for {
		d, err := rc.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&127) * mult
		if d&128 == 0 {
			break
		}
		mult *= 128
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return 0, nil, err
	}
	return h >> 4, body, nil
}

func (rc *rawClient) subscribe(filter string, qos byte) error {
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}
	_ = pk.SubscribeEncode(&buf)
	if _, err := rc.c.Write(buf.Bytes()); err != nil {
		return err
	}
	typ, body, err := rc.next()
	if err != nil || typ != packets.Suback || body[len(body)-1] >= 0x80 {
		return fmt.Errorf("subscribe %s: type %d body % x: %v", filter, typ, body, err)
	}
	return nil
}

func publishFrame(topic string, payload []byte) []byte {
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 4, TopicName: topic, Payload: payload}
	_ = pk.PublishEncode(&buf)
	return buf.Bytes()
}

// connectAll connects devices 0..n-1 with workers in parallel and returns them and the rate.
func connectAll(b *testing.B, addr string, n, workers int) ([]*rawClient, float64) {
	b.Helper()
	start := time.Now()
	clients, err := connectDevices(addr, n, workers, nil)
	if err != nil {
		b.Fatal(err)
	}
	return clients, float64(n) / time.Since(start).Seconds()
}

// connectDevices connects devices 0..n-1 with workers in parallel, calling then (when set)
// on each connected device. On the first error it closes them all and returns it.
func connectDevices(addr string, n, workers int, then func(i int, c *rawClient) error) ([]*rawClient, error) {
	clients := make([]*rawClient, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dialRaw(addr, deviceID(i), "secret-"+deviceID(i))
				if err == nil {
					clients[i] = c
					if then != nil {
						err = then(i, c)
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

func closeAll(cs []*rawClient) {
	for _, c := range cs {
		if c != nil {
			c.c.Close()
		}
	}
}

func bothBrokers(b *testing.B, n int, run func(b *testing.B, t *benchTarget)) {
	raiseFileLimit(b)
	for _, start := range []func(*testing.B, int) *benchTarget{startEmbedded, startMosquitto} {
		t := start(b, n)
		b.Run(t.name, func(b *testing.B) { run(b, t) })
		t.stop()
	}
}

// BenchmarkIdleDevices: memory per idle connected, authenticated device. The devices connect
// from a child process; for the embedded broker, heap-B/device is Go heap + stacks and
// stack-B/device the goroutine stacks alone.
func BenchmarkIdleDevices(b *testing.B) {
	n := benchDevices()
	bothBrokers(b, n, func(b *testing.B, t *benchTarget) {
		for i := 0; i < b.N; i++ {
			var heap0, stack0 int64
			if t.heap != nil {
				heap0, stack0 = t.heap(), t.stack()
			}
			rss0 := t.rss()
			child := startClientsChild(b, t.addr, n, childIdle)
			rss1 := t.rss()
			if t.heap != nil {
				b.ReportMetric(float64(t.heap()-heap0)/float64(n), "heap-B/device")
				b.ReportMetric(float64(t.stack()-stack0)/float64(n), "stack-B/device")
			}
			b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/device")
			b.ReportMetric(float64(n), "devices")
			child.stop()
		}
	})
}

// What the child process's devices do once connected.
const (
	childIdle   = "idle"   // nothing
	childFanout = "fanout" // subscribe to their downlink; on each "round" line, wait for one command each
)

// clientsChild is a child process (this test binary, TestClientsChild) holding devices
// 0..n-1 connected to a broker, so that the broker's process holds only its own memory and
// one descriptor per device. It talks line by line over its standard input and output.
type clientsChild struct {
	b    *testing.B
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	once sync.Once
}

// startClientsChild returns once all n devices are connected (and subscribed, for fan-out).
func startClientsChild(b *testing.B, addr string, n int, mode string) *clientsChild {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestClientsChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "BROKER_BENCH_CHILD_ADDR="+addr, "BROKER_BENCH_CHILD_MODE="+mode,
		"BROKER_BENCH_DEVICES="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &clientsChild{b: b, cmd: cmd, in: in, out: bufio.NewReader(out)}
	c.expect("connected")
	return c
}

// expect reads the child's next line and fails the benchmark unless it is want.
func (c *clientsChild) expect(want string) {
	c.b.Helper()
	line, _ := c.out.ReadString('\n')
	if got := strings.TrimSpace(line); got != want {
		c.stop()
		c.b.Fatalf("clients child: want %q, got %q", want, got)
	}
}

func (c *clientsChild) send(line string) {
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		c.b.Fatalf("clients child: %v", err)
	}
}

// stop disconnects the devices: the child closes them and exits when its input closes.
func (c *clientsChild) stop() {
	c.once.Do(func() {
		_ = c.in.Close()
		_ = c.cmd.Wait()
	})
}

// TestClientsChild is the benchmarks' child process (clientsChild); it does nothing in a
// normal test run.
func TestClientsChild(t *testing.T) {
	addr := os.Getenv("BROKER_BENCH_CHILD_ADDR")
	if addr == "" {
		return
	}
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
	n := benchDevices()
	fanout := os.Getenv("BROKER_BENCH_CHILD_MODE") == childFanout
	var subscribe func(i int, c *rawClient) error
	if fanout {
		subscribe = func(i int, c *rawClient) error {
			return c.subscribe(protocol.DownlinkFilter(protocol.DefaultRoot, deviceID(i)), 1)
		}
	}
	clients, err := connectDevices(addr, n, 8, subscribe)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(clients)
	fmt.Println("connected")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "round" || !fanout {
			continue
		}
		// Every device waits for one command and acknowledges it; "received" says that all
		// have theirs, or names how many did before the deadline.
		var received atomic.Int64
		var wg sync.WaitGroup
		for _, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if receiveCommand(c, time.Now().Add(60*time.Second)) {
					received.Add(1)
				}
			}()
		}
		fmt.Println("ready")
		wg.Wait()
		if got := received.Load(); got == int64(n) {
			fmt.Println("received")
		} else {
			fmt.Printf("received %d of %d\n", got, n)
		}
	}
}

// receiveCommand reads c until a PUBLISH arrives, acknowledges it when it is QoS 1, and
// reports whether one arrived before the deadline.
func receiveCommand(c *rawClient, deadline time.Time) bool {
	_ = c.c.SetReadDeadline(deadline)
	for {
		typ, body, err := c.next()
		if err != nil {
			return false
		}
		if typ != packets.Publish {
			continue
		}
		if len(body) > 2 { // QoS 1: acknowledge (the packet ID follows the topic)
			tl := int(body[0])<<8 | int(body[1])
			if len(body) >= 4+tl {
				_, _ = c.c.Write([]byte{packets.Puback << 4, 2, body[2+tl], body[3+tl]})
			}
		}
		return true
	}
}

// BenchmarkConnectRate: authenticated CONNECTs per second from 8 parallel connectors.
func BenchmarkConnectRate(b *testing.B) {
	n := benchDevices()
	bothBrokers(b, n, func(b *testing.B, t *benchTarget) {
		for i := 0; i < b.N; i++ {
			clients, rate := connectAll(b, t.addr, n, 8)
			b.ReportMetric(rate, "connects/s")
			closeAll(clients)
			if t.broker != nil {
				poll.Until(b, 30*time.Second, "every device to be offline", func() bool { return t.broker.OnlineCount() == 0 })
			}
		}
	})
}

const ingestPublishers, ingestPerPublisher = 20, 20000

// BenchmarkIngest: devices publish QoS 0 uplinks as fast as they can and the server side
// counts them. In the embedded broker that is the server's in-process subscription (through
// auth, ACL, ingest hooks and the subscription queue); Mosquitto has no in-process client, so
// its server side is a network subscriber of espadmin/+/up/# (QoS 0) — the path a server
// using an external broker has. The publishing tool is the same for both.
func BenchmarkIngest(b *testing.B) {
	bothBrokers(b, ingestPublishers, func(b *testing.B, t *benchTarget) {
		var got atomic.Int64
		if t.broker != nil {
			unsub, err := t.broker.Subscribe(context.Background(), protocol.UplinkFilter(protocol.DefaultRoot, ""), 1,
				func(messaging.Message) { got.Add(1) })
			if err != nil {
				b.Fatal(err)
			}
			defer unsub()
		} else {
			sub, err := dialRaw(t.addr, "server", "server-secret")
			if err != nil {
				b.Fatal(err)
			}
			defer sub.c.Close()
			if err := sub.subscribe(protocol.UplinkFilter(protocol.DefaultRoot, ""), 0); err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					typ, _, err := sub.next()
					if err != nil {
						return
					}
					if typ == packets.Publish {
						got.Add(1)
					}
				}
			}()
		}
		for i := 0; i < b.N; i++ {
			got.Store(0)
			b.ReportMetric(runIngest(b, t, got.Load), "msg/s")
		}
	})
}

// runIngest runs ingestPublishers devices publishing ingestPerPublisher messages each and
// returns the delivered rate measured by count.
func runIngest(b *testing.B, t *benchTarget, count func() int64) float64 {
	clients, _ := connectAll(b, t.addr, ingestPublishers, 4)
	defer closeAll(clients)
	total := int64(ingestPublishers * ingestPerPublisher)
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			frame := publishFrame(protocol.Uplink(protocol.DefaultRoot, deviceID(i), protocol.KindLog), []byte(`{"v":1,"seq":1,"lines":[]}`))
			batch := bytes.Repeat(frame, 100)
			w := bufio.NewWriterSize(c.c, 64<<10)
			for j := 0; j < ingestPerPublisher/100; j++ {
				_, _ = w.Write(batch)
			}
			_ = w.Flush()
		}()
	}
	wg.Wait()
	// Wait until everything arrived or nothing has arrived for a second (the rest was
	// dropped); the rate runs to the last arrival.
	last, lastAt := count(), time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for last < total && time.Since(lastAt) < time.Second {
		<-tick.C
		if c := count(); c != last {
			last, lastAt = c, time.Now()
		}
	}
	el := lastAt.Sub(start)
	got := last
	b.ReportMetric(float64(total-got), "dropped")
	if got < total {
		b.Logf("%s: %d of %d messages arrived (dropped by full queues)", t.name, got, total)
	}
	return float64(got) / el.Seconds()
}

// BenchmarkCommandFanout: time from the first command published to every online device
// having received its own command. The devices run in a child process (clientsChild); the
// time ends when the child says that all have theirs.
func BenchmarkCommandFanout(b *testing.B) {
	n := benchDevices()
	bothBrokers(b, n, func(b *testing.B, t *benchTarget) {
		child := startClientsChild(b, t.addr, n, childFanout)
		defer child.stop()
		var publish func(i int)
		if t.broker != nil {
			publish = func(i int) {
				_ = t.broker.Publish(context.Background(), messaging.Message{Topic: protocol.DownlinkCommand(protocol.DefaultRoot, deviceID(i)),
					Payload: []byte(`{"v":1,"id":"c1","type":"restart"}`), QoS: 1})
			}
		} else {
			srv, err := dialRaw(t.addr, "server", "server-secret")
			if err != nil {
				b.Fatal(err)
			}
			defer srv.c.Close()
			w := bufio.NewWriterSize(srv.c, 64<<10)
			publish = func(i int) {
				_, _ = w.Write(publishFrame(protocol.DownlinkCommand(protocol.DefaultRoot, deviceID(i)), []byte(`{"v":1,"id":"c1","type":"restart"}`)))
				if i == n-1 {
					_ = w.Flush()
				}
			}
		}
		for it := 0; it < b.N; it++ {
			child.send("round")
			child.expect("ready")
			start := time.Now()
			for i := 0; i < n; i++ {
				publish(i)
			}
			child.expect("received")
			b.ReportMetric(time.Since(start).Seconds()*1000, "ms/all-devices")
			b.ReportMetric(float64(n), "devices")
		}
	})
}
