package broker

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/espadmin/espadmin/tests/testkit/poll"
)

// TestDeadlineConnWriteTimeout: a peer that never reads makes the flusher's write time out;
// the connection is closed and marked, and mochi's Write calls never block meanwhile.
func TestDeadlineConnWriteTimeout(t *testing.T) {
	t.Parallel()
	server, peer := net.Pipe() // unbuffered: every write blocks until the peer reads
	defer peer.Close()
	dc := newDeadlineConn(server, 0, 100*time.Millisecond, 1<<20)
	start := time.Now()
	for i := 0; i < 10; i++ {
		if _, err := dc.Write(make([]byte, 1000)); err != nil {
			break
		}
	}
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Fatalf("Write blocked for %s", el)
	}
	poll.Until(t, 5*time.Second, "the write timeout", dc.writeFailed.Load)
	if _, err := dc.Write([]byte("x")); err == nil {
		t.Fatal("Write succeeded after the write timeout")
	}
	if _, err := peer.Read(make([]byte, 1)); err == nil {
		t.Fatal("socket still open after the write timeout")
	}
}

// TestDeadlineConnOverflow: a client whose unsent bytes exceed the bound is disconnected at
// once, without waiting for the write timeout.
func TestDeadlineConnOverflow(t *testing.T) {
	t.Parallel()
	server, peer := net.Pipe()
	defer peer.Close()
	dc := newDeadlineConn(server, 0, time.Hour, 4096)
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = dc.Write(make([]byte, 1000))
	}
	if !errors.Is(err, errSlowClient) || !dc.writeFailed.Load() {
		t.Fatalf("overflow: err %v, marked %v", err, dc.writeFailed.Load())
	}
}

// TestDeadlineConnCloseFlushes: what mochi writes just before closing (a CONNACK refusal, a
// DISCONNECT) still reaches the peer.
func TestDeadlineConnCloseFlushes(t *testing.T) {
	t.Parallel()
	server, peer := net.Pipe()
	defer peer.Close()
	dc := newDeadlineConn(server, 0, 5*time.Second, 1<<20)
	if _, err := dc.Write([]byte{0x20, 0x02, 0x00, 0x05}); err != nil {
		t.Fatal(err)
	}
	_ = dc.Close()
	got := make([]byte, 4)
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(got); err != nil || got[3] != 0x05 {
		t.Fatalf("read % x, %v", got, err)
	}
	if _, err := peer.Read(got); err == nil {
		t.Fatal("socket not closed after the flush")
	}
}

// fakeListener fails Accept a number of times, then returns a connection.
type fakeListener struct {
	failures int
	conn     net.Conn
	closed   chan struct{}
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

func (l *fakeListener) Accept() (net.Conn, error) {
	if l.failures > 0 {
		l.failures--
		return nil, tempErr{}
	}
	if l.conn != nil {
		c := l.conn
		l.conn = nil
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}
func (l *fakeListener) Close() error   { close(l.closed); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// TestRetryListener: Accept errors (EMFILE) back off from 5 ms, doubling to 1 s, and the
// listener keeps serving; Close ends it.
func TestRetryListener(t *testing.T) {
	t.Parallel()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	fl := &fakeListener{failures: 10, conn: c1, closed: make(chan struct{})}
	rl := newRetryListener(fl, testLogger())
	var waits []time.Duration
	rl.wait = func(d time.Duration, _ <-chan struct{}) { waits = append(waits, d) }
	c, err := rl.Accept()
	if err != nil || c != c1 {
		t.Fatalf("Accept after errors: %v, %v", c, err)
	}
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	if len(waits) != len(want) {
		t.Fatalf("waits %v", waits)
	}
	for i, w := range want {
		if waits[i] != w*time.Millisecond {
			t.Fatalf("wait %d = %s, want %s (all: %v)", i, waits[i], w*time.Millisecond, waits)
		}
	}
	done := make(chan error)
	go func() { _, err := rl.Accept(); done <- err }()
	_ = rl.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept did not return after Close")
	}
}

// TestDeadlineConnPooledReads: over TCP, bytes arrive intact through the pooled chunks
// whatever the reader's slice size, no chunk is held once mochi has read everything, and the
// end of the stream and read deadlines surface as net.Conn.Read reports them.
func TestDeadlineConnPooledReads(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	dc := newDeadlineConn(server, 0, time.Second, 1<<20)
	dc.poolReads(newReadPool(256))
	defer dc.Close()
	if dc.raw == nil {
		t.Fatal("TCP connection not read through the pool")
	}

	want := make([]byte, 5000)
	for i := range want {
		want[i] = byte(i * 7)
	}
	if _, err := peer.Write(want); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, len(want))
	for i := 0; len(got) < len(want); i++ {
		p := make([]byte, []int{1, 64, 300, 17}[i%4]) // small reads and reads past the chunk size
		n, err := dc.Read(p)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", len(got), err)
		}
		got = append(got, p[:n]...)
	}
	if string(got) != string(want) {
		t.Fatal("bytes differ")
	}
	if dc.rbuf != nil {
		t.Fatal("chunk still held after everything was read")
	}

	_ = dc.SetDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := dc.Read(make([]byte, 16)); !isTimeout(err) {
		t.Fatalf("read past the deadline: %v", err)
	}
	_ = dc.SetDeadline(time.Time{})
	_ = peer.Close()
	if _, err := dc.Read(make([]byte, 16)); !errors.Is(err, io.EOF) {
		t.Fatalf("read at the end of the stream: %v", err)
	}
}
