package broker

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mqttListener is what mochi needs of a listener.
type mqttListener = listeners.Listener

// minWriteBuffer is the least a client's outbound byte buffer may hold before the client is
// disconnected as too slow; the bound is 4 × the maximum packet size when that is larger.
const minWriteBuffer = 256 << 10

// Accept back-off after a failed Accept (e.g. EMFILE): 5 ms, doubling, at most 1 s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// retryListener keeps a listener serving through failed Accepts. mochi's TCP listener (and a
// naive accept loop) stops for good at the first Accept error, so one burst of "too many open
// files" would silently end MQTT service; here Accept waits and tries again until the
// listener is closed.
type retryListener struct {
	net.Listener
	log    *slog.Logger
	closed chan struct{}
	once   sync.Once
	// wait sleeps for d or until the listener is closed; replaced in tests.
	wait func(d time.Duration, closed <-chan struct{})
}

func newRetryListener(ln net.Listener, log *slog.Logger) *retryListener {
	return &retryListener{Listener: ln, log: log, closed: make(chan struct{}), wait: sleepOrClosed}
}

func sleepOrClosed(d time.Duration, closed <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-closed:
	}
}

func (l *retryListener) Accept() (net.Conn, error) {
	delay := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return c, nil
		}
		select {
		case <-l.closed:
			return nil, net.ErrClosed
		default:
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		if delay == 0 {
			delay = acceptBackoffMin
		} else {
			delay = min(2*delay, acceptBackoffMax)
		}
		l.log.Warn("mqtt accept failed; retrying", "error", err, "retry_in", delay.String())
		l.wait(delay, l.closed)
	}
}

func (l *retryListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// deadlineConn stands between mochi and a client's socket:
//   - until CONNECT has been read, reads expire after the connect timeout (mochi would wait
//     forever); mochi's first SetDeadline call, made right after it has read CONNECT,
//     replaces that with its keepalive deadline. mochi's SetDeadline sets the read deadline
//     only: writes have their own.
//   - writes never block mochi. mochi writes while holding the client's lock, and publishing
//     a QoS 1 message to a client takes that lock too (for the packet ID), so one device that
//     stops reading would stall every publisher feeding it — the server's command loop
//     included. Write copies the bytes into a per-connection buffer and a flusher goroutine,
//     started only while there is something to send, writes them to the socket with the write
//     timeout. A client whose buffer outgrows maxBuffered, or whose socket accepts nothing for
//     the write timeout, is disconnected.
type deadlineConn struct {
	net.Conn
	writeTimeout time.Duration
	maxBuffered  int

	connected   atomic.Bool // mochi has read CONNECT
	writeFailed atomic.Bool // a write timed out or the buffer overflowed

	// started runs once, at mochi's first Read: by then mochi has registered the connection
	// (see Broker.admit).
	started     func()
	startedOnce sync.Once

	mu       sync.Mutex
	buf      []byte
	flushing bool
	closing  bool
	err      error

	// Reading, on mochi's reader goroutine only. raw is nil unless the connection is a TCP
	// socket (TLS and WebSocket connections buffer inside their own layers).
	raw        syscall.RawConn
	rpool      *readPool
	rbuf       *[]byte // a pooled chunk holding rbuf[rpos:rend] not yet read by mochi
	rpos, rend int
}

// mochiReadBuffer is the size of the bufio.Reader mochi keeps for each client (its
// ClientNetReadBufferSize). mochi holds it for the life of the connection, so it is kept
// small: the bytes are buffered by deadlineConn in pooled chunks only while any are pending.
const mochiReadBuffer = 64

// readPool holds the read chunks of every TCP connection: a connection takes one when its
// socket has data and returns it once mochi has read all of it.
type readPool struct {
	size int
	pool sync.Pool
}

func newReadPool(size int) *readPool {
	p := &readPool{size: size}
	p.pool.New = func() any { b := make([]byte, size); return &b }
	return p
}

func (p *readPool) get() *[]byte  { return p.pool.Get().(*[]byte) }
func (p *readPool) put(b *[]byte) { p.pool.Put(b) }

var errSlowClient = errors.New("mqtt: client does not read fast enough; disconnected")

func newDeadlineConn(c net.Conn, connectTimeout, writeTimeout time.Duration, maxBuffered int) *deadlineConn {
	if connectTimeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(connectTimeout))
	}
	return &deadlineConn{Conn: c, writeTimeout: writeTimeout, maxBuffered: maxBuffered}
}

// poolReads makes c read through pool when it is a TCP socket; other connections are read
// directly.
func (c *deadlineConn) poolReads(pool *readPool) {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	c.raw, c.rpool = raw, pool
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.started != nil {
		c.startedOnce.Do(c.started)
	}
	if c.raw == nil {
		return c.Conn.Read(p)
	}
	if c.rbuf != nil {
		n := copy(p, (*c.rbuf)[c.rpos:c.rend])
		c.rpos += n
		if c.rpos == c.rend {
			c.rpool.put(c.rbuf)
			c.rbuf = nil
		}
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) >= c.rpool.size {
		return c.readRaw(p, nil) // a large packet body: straight into mochi's slice
	}
	var chunk *[]byte
	n, err := c.readRaw(nil, &chunk)
	if n == 0 {
		return 0, err
	}
	m := copy(p, (*chunk)[:n])
	if m < n {
		c.rbuf, c.rpos, c.rend = chunk, m, n
	} else {
		c.rpool.put(chunk)
	}
	return m, nil
}

// readRaw waits until the socket is readable (or its read deadline passes, or it is
// closed), then reads into p or, when p is nil, into a chunk taken from the pool only at
// that point and left in *chunk. It returns what net.Conn.Read would: io.EOF at the end of
// the stream and net errors otherwise.
func (c *deadlineConn) readRaw(p []byte, chunk **[]byte) (int, error) {
	var n int
	var serr error
	err := c.raw.Read(func(fd uintptr) bool {
		dst := p
		if dst == nil {
			*chunk = c.rpool.get()
			dst = **chunk
		}
		for {
			n, serr = syscall.Read(int(fd), dst)
			if serr != syscall.EINTR {
				break
			}
		}
		if serr == syscall.EAGAIN {
			if p == nil {
				c.rpool.put(*chunk)
				*chunk = nil
			}
			return false // wait for the poller
		}
		return true
	})
	if err == nil && serr == nil && n > 0 {
		return n, nil
	}
	if p == nil && *chunk != nil {
		c.rpool.put(*chunk)
		*chunk = nil
	}
	switch {
	case err != nil:
		return 0, err
	case serr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", serr)}
	default:
		return 0, io.EOF
	}
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.connected.Store(true)
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return 0, err
	case c.closing:
		c.mu.Unlock()
		return 0, net.ErrClosed
	case len(c.buf)+len(p) > c.maxBuffered:
		c.err = errSlowClient
		c.mu.Unlock()
		c.writeFailed.Store(true)
		_ = c.Conn.Close() // the reader sees the close and mochi ends the session
		return 0, errSlowClient
	}
	c.buf = append(c.buf, p...)
	if !c.flushing {
		c.flushing = true
		go c.flush()
	}
	c.mu.Unlock()
	return len(p), nil
}

// flush writes the buffer out until it is empty, then ends; it closes the socket when a
// write fails or when Close was called meanwhile.
func (c *deadlineConn) flush() {
	for {
		c.mu.Lock()
		if len(c.buf) == 0 || c.err != nil {
			c.flushing = false
			closing := c.closing || c.err != nil
			c.mu.Unlock()
			if closing {
				_ = c.Conn.Close()
			}
			return
		}
		out := c.buf
		c.buf = nil
		c.mu.Unlock()

		if c.writeTimeout > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
		}
		if _, err := c.Conn.Write(out); err != nil {
			if isTimeout(err) {
				c.writeFailed.Store(true)
			}
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
		}
	}
}

// Close stops reading at once and closes the socket once what mochi wrote last (a CONNACK
// refusal, a DISCONNECT) has been sent, within the write timeout.
func (c *deadlineConn) Close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	pending := c.flushing
	c.mu.Unlock()
	if pending {
		return c.Conn.SetReadDeadline(time.Now()) // wakes the reader; flush closes the socket
	}
	return c.Conn.Close()
}

// serveConn hands one accepted connection to mochi and accounts for how it ended.
// The caller has been admitted (Broker.admit) and serveConn releases that when mochi starts
// reading the connection.
func (b *Broker) serveConn(listenerID string, c net.Conn, establish listeners.EstablishFn) {
	dc := newDeadlineConn(c, b.cfg.ConnectTimeout, b.cfg.WriteTimeout, max(4*b.cfg.MaxPacketSize, minWriteBuffer))
	dc.started = b.handoff.Done
	dc.poolReads(b.readPool)
	err := establish(listenerID, dc)
	dc.startedOnce.Do(b.handoff.Done) // mochi returned without reading
	switch {
	case err == nil:
	case dc.writeFailed.Load():
		b.metrics.dropped.WithLabelValues(dropSlowClientDisconnect).Inc()
	case errors.Is(err, packets.ErrPacketTooLarge):
		b.metrics.dropped.WithLabelValues(dropOversized).Inc()
	case !dc.connected.Load() && isTimeout(err):
		b.metrics.connects.WithLabelValues(connectTimeout).Inc()
	}
	if err != nil {
		b.log.Debug("mqtt connection ended", "listener", listenerID, "remote", c.RemoteAddr().String(), "error", err)
	}
}

// netListener serves MQTT over TCP, or TLS when tlsConf is set.
type netListener struct {
	id, proto, addr string
	tlsConf         *tls.Config
	b               *Broker
	ln              *retryListener
	done            chan struct{}
	closeOnce       sync.Once
}

func newNetListener(id, proto, addr string, tlsConf *tls.Config, b *Broker) *netListener {
	return &netListener{id: id, proto: proto, addr: addr, tlsConf: tlsConf, b: b, done: make(chan struct{})}
}

func (l *netListener) ID() string       { return l.id }
func (l *netListener) Protocol() string { return l.proto }

func (l *netListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *netListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = newRetryListener(ln, l.b.log)
	return nil
}

func (l *netListener) Serve(establish listeners.EstablishFn) {
	defer close(l.done)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		if !l.b.admit() {
			_ = c.Close()
			continue
		}
		if l.tlsConf != nil {
			c = tls.Server(c, l.tlsConf) // the handshake runs under the connect deadline
		}
		go l.b.serveConn(l.id, c, establish)
	}
}

// Close closes the socket when Init bound one: a listener whose Init failed (its port
// taken) is closed too when the broker gives up building.
func (l *netListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		if l.ln != nil {
			_ = l.ln.Close()
		}
		closeClients(l.id)
	})
}

// wsListener serves MQTT over WebSocket on one path, checking the Origin header. mochi's own
// WebSocket listener upgrades any path from any Origin, which would let any web page a user
// opens drive a connection to the broker.
type wsListener struct {
	id, addr, path string
	origins        []string
	b              *Broker
	ln             *retryListener
	srv            *http.Server
	establish      listeners.EstablishFn
	upgrader       websocket.Upgrader
	closeOnce      sync.Once
}

func newWSListener(id, addr, path string, origins []string, b *Broker) *wsListener {
	l := &wsListener{id: id, addr: addr, path: path, origins: origins, b: b}
	l.upgrader = websocket.Upgrader{
		Subprotocols:    []string{"mqtt"},
		ReadBufferSize:  b.cfg.BufferSize,
		WriteBufferSize: b.cfg.BufferSize,
		// The Origin is checked in ServeHTTP before upgrading, with the configured list.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return l
}

func (l *wsListener) ID() string       { return l.id }
func (l *wsListener) Protocol() string { return "ws" }

func (l *wsListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

func (l *wsListener) Init(*slog.Logger) error {
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = newRetryListener(ln, l.b.log)
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: l.b.cfg.ConnectTimeout,
		ErrorLog:          slog.NewLogLogger(l.b.log.Handler(), slog.LevelDebug),
	}
	return nil
}

func (l *wsListener) Serve(establish listeners.EstablishFn) {
	l.establish = establish
	_ = l.srv.Serve(l.ln)
}

// originAllowed reports whether a request's Origin may open a connection: no Origin (a
// device or another non-browser client) always may; a browser's only when listed.
func (l *wsListener) originAllowed(origin string) bool {
	if origin == "" {
		return true
	}
	for _, o := range l.origins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	if !l.originAllowed(r.Header.Get("Origin")) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !l.b.admit() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	c, err := l.upgrader.Upgrade(w, r, nil)
	if err != nil {
		l.b.handoff.Done()
		return // the upgrader has answered
	}
	c.SetReadLimit(int64(l.b.cfg.MaxPacketSize) + 8)
	l.b.serveConn(l.id, &wsConn{Conn: c.NetConn(), ws: c}, l.establish)
}

func (l *wsListener) Close(closeClients listeners.CloseFn) {
	l.closeOnce.Do(func() {
		if l.ln != nil {
			_ = l.ln.Close()
			_ = l.srv.Close()
		}
		closeClients(l.id)
	})
}

// wsConn presents a WebSocket as the byte stream mochi reads MQTT packets from: binary
// messages concatenated (MQTT packets may span messages and share them).
type wsConn struct {
	net.Conn // the raw connection: addresses and deadlines
	ws       *websocket.Conn
	r        io.Reader
	wmu      sync.Mutex
}

var errWSText = errors.New("mqtt over websocket: text frames are not MQTT")

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			op, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errWSText
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if errors.Is(err, io.EOF) {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error { return c.ws.Close() }
