package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ServeOptions bound what the connections of one listener may hold. The
// zero value of a field means its default; nil means all defaults.
type ServeOptions struct {
	// MaxConns is how many connections are served at once; more wait in
	// the kernel's accept queue (costing no file descriptor) until one
	// ends. Default 64.
	MaxConns int
	// IdleTimeout closes a keep-alive connection that sends no request
	// for this long. Default 60s.
	IdleTimeout time.Duration
	// ReadHeaderTimeout closes a connection whose request headers take
	// longer than this to arrive. Default 10s.
	ReadHeaderTimeout time.Duration
	// WriteTimeout ends a connection when one write of its response
	// (at most 64 KiB, see the stream's buffer) makes no progress for this
	// long: a /v1/dump client that stops reading is cut off, one that
	// reads slowly is not. Default 30s.
	WriteTimeout time.Duration
}

// The defaults of ServeOptions.
const (
	DefaultMaxConns          = 64
	DefaultIdleTimeout       = 60 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
)

func (o *ServeOptions) withDefaults() (ServeOptions, error) {
	var out ServeOptions
	if o != nil {
		out = *o
	}
	if out.MaxConns < 0 || out.IdleTimeout < 0 || out.ReadHeaderTimeout < 0 || out.WriteTimeout < 0 {
		return out, errors.New("serve options: negative limit")
	}
	if out.MaxConns == 0 {
		out.MaxConns = DefaultMaxConns
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = DefaultIdleTimeout
	}
	if out.ReadHeaderTimeout == 0 {
		out.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if out.WriteTimeout == 0 {
		out.WriteTimeout = DefaultWriteTimeout
	}
	return out, nil
}

// HTTPServer serves one handler on one listener within ServeOptions'
// bounds, logging the HTTP server's own errors through slog.
type HTTPServer struct {
	srv *http.Server
	ln  *limitListener
}

// NewHTTPServer prepares h on ln; call Serve. Its errors (a malformed
// request, a failed accept) go to logger at WARN, with listener=name.
func NewHTTPServer(name string, h http.Handler, ln net.Listener, logger *slog.Logger, o *ServeOptions) (*HTTPServer, error) {
	opts, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &HTTPServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: opts.ReadHeaderTimeout,
			IdleTimeout:       opts.IdleTimeout,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.With("listener", name).Handler(), slog.LevelWarn),
		},
		ln: newLimitListener(ln, opts.MaxConns, opts.WriteTimeout),
	}, nil
}

// Serve serves until Shutdown or Close; it then returns
// http.ErrServerClosed.
func (s *HTTPServer) Serve() error { return s.srv.Serve(s.ln) }

// Shutdown stops accepting and waits for the requests in flight, up to
// ctx's deadline.
func (s *HTTPServer) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// Close closes the listener and every connection at once.
func (s *HTTPServer) Close() error { return s.srv.Close() }

// Open is the number of connections open now.
func (s *HTTPServer) Open() int { return int(s.ln.open.Load()) }

// limitListener accepts at most max connections at a time, and gives
// each a write deadline renewed by every write.
type limitListener struct {
	net.Listener
	sem          chan struct{}
	done         chan struct{}
	closeOnce    sync.Once
	open         atomic.Int64
	writeTimeout time.Duration
}

func newLimitListener(ln net.Listener, max int, writeTimeout time.Duration) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{}), writeTimeout: writeTimeout}
}

// Accept waits for a free slot before taking a connection off the queue.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	l.open.Add(1)
	return &boundedConn{Conn: c, l: l}, nil
}

// Close stops Accept, including one waiting for a slot.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// boundedConn frees its slot when closed, and renews its write deadline
// before every write: a write that makes no progress for writeTimeout
// fails, and the handler writing it stops.
type boundedConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *boundedConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.writeTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *boundedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		<-c.l.sem
	})
	return err
}

// CloseWrite lets the HTTP server half-close the connection, as it does
// for a bare one.
func (c *boundedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
