package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mirrord/mirrord/generators"
	"github.com/mirrord/mirrord/kv"
	"github.com/mirrord/mirrord/mirror"
)

// Config is what a Server serves.
type Config struct {
	DB     *kv.DB
	Engine *mirror.Engine
	// Runner returns the current generator runner (it is replaced when a
	// reload changes the set); nil when none runs.
	Runner       func() *generators.Runner
	Store        string
	Version      string
	MaxValueSize int
	// StallTimeout: /healthz answers 503 once the log has been ahead of a
	// checkpoint that did not move for this long. Default: 1m.
	StallTimeout time.Duration
	Logger       *slog.Logger
	// Fatal, when set, is called with every store error a request meets
	// that no retry can mend: a corrupt store (kv.ErrCorrupt). The daemon
	// stops on it. Default: none; the request fails with 500 either way.
	Fatal func(error)
}

// Server is the daemon's HTTP API.
type Server struct {
	cfg       Config
	verifying sync.Mutex   // one /v1/verify at a time
	stall     atomic.Int64 // ns
	health    healthTracker
	metrics   *Metrics
}

// NewServer builds the API over a running engine.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = time.Minute
	}
	if cfg.Runner == nil {
		cfg.Runner = func() *generators.Runner { return nil }
	}
	s := &Server{cfg: cfg}
	s.stall.Store(int64(cfg.StallTimeout))
	s.metrics = newMetrics(s)
	return s
}

// SetStallTimeout changes the stall timeout of /healthz (a reload).
func (s *Server) SetStallTimeout(d time.Duration) {
	if d > 0 {
		s.stall.Store(int64(d))
	}
}

// Applied feeds the metrics; wire it to the engine's OnApply.
func (s *Server) Applied(a mirror.Applied) { s.metrics.applied(a) }

// Handler serves the whole API, for the unix socket.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/get", s.get)
	mux.HandleFunc("GET /v1/keys", func(w http.ResponseWriter, r *http.Request) { s.stream(w, r, false) })
	mux.HandleFunc("GET /v1/dump", func(w http.ResponseWriter, r *http.Request) { s.stream(w, r, true) })
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/verify", s.verify)
	mux.HandleFunc("GET /v1/generators", s.generators)
	mux.HandleFunc("POST /v1/generators/rebuild", s.rebuild)
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

// PublicHandler serves only /metrics and /healthz, for the optional TCP
// listener: nothing that reads the store.
func (s *Server) PublicHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", s.metrics.handler())
	return mux
}

// errorBody is the body of every error response.
type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, errorBody{Error: err.Error()})
}

// storeError answers a request that a store error ended, and passes an
// error no retry mends to Config.Fatal.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	s.checkFatal(err)
	writeError(w, statusOf(err), err)
}

func (s *Server) checkFatal(err error) {
	if s.cfg.Fatal != nil && errors.Is(err, kv.ErrCorrupt) {
		s.cfg.Fatal(err)
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, kv.ErrClosed), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	case errors.Is(err, generators.ErrUnknown):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	key := r.URL.Query().Get("key")
	if key == "" {
		writeError(w, http.StatusBadRequest, errors.New("query parameter key is required"))
		return
	}
	var v json.RawMessage
	found, err := s.cfg.DB.Get(key, &v)
	switch {
	case err != nil:
		s.storeError(w, err)
	case !found:
		w.Header().Set(missingHeader, "1")
		writeError(w, http.StatusNotFound, fmt.Errorf("no key %q in store %s", key, s.cfg.Store))
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(v)
	}
}

var errPageFull = errors.New("page full")

// missingHeader marks the 404 of /v1/get for a key that does not exist
// (as opposed to a path that does not exist).
const missingHeader = "Mirrord-Missing"

// stream answers /v1/keys and /v1/dump: JSON lines ("key", or
// {"key":…,"value":…}) from one snapshot, in key order, never the whole
// range in memory. Parameters: prefix, after (exclusive: the last key of
// the previous page), limit (default 0: everything). An error after the
// first line ends the stream with a line {"error": "..."}.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, values bool) {
	q := r.URL.Query()
	prefix, after := q.Get("prefix"), q.Get("after")
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("limit %q is not a count", l))
			return
		}
		limit = n
	}
	snap, err := s.cfg.DB.Snapshot()
	if err != nil {
		s.storeError(w, err)
		return
	}
	defer snap.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	var line []byte
	err = snap.ScanFrom(prefix, after, func(key string, value json.RawMessage) error {
		if key == after {
			return nil
		}
		if limit > 0 && n >= limit {
			return errPageFull
		}
		if err := r.Context().Err(); err != nil {
			return err // the client went away
		}
		line = AppendLine(line[:0], key, value, values)
		n++
		_, err := bw.Write(line)
		return err
	})
	if err != nil && !errors.Is(err, errPageFull) {
		s.checkFatal(err)
		b, _ := json.Marshal(errorBody{Error: err.Error()})
		_, _ = bw.Write(append(b, '\n'))
	}
	_ = bw.Flush()
}

// AppendLine appends one line of /v1/keys ("key") or /v1/dump
// ({"key":…,"value":…}), as mirrord keys and dump print them.
func AppendLine(dst []byte, key string, value []byte, withValue bool) []byte {
	k, _ := json.Marshal(key)
	if !withValue {
		return append(append(dst, k...), '\n')
	}
	dst = append(dst, `{"key":`...)
	dst = append(dst, k...)
	dst = append(dst, `,"value":`...)
	dst = append(dst, value...)
	return append(dst, "}\n"...)
}

// StatusResponse is the body of /v1/status.
type StatusResponse struct {
	Version    string              `json:"version"`
	Store      string              `json:"store"`
	Mirror     mirror.Status       `json:"mirror"`
	Generators []generators.Status `json:"generators"`
	Healthy    bool                `json:"healthy"`
	Health     string              `json:"health"`
	// Starting: the daemon does not serve the store yet (StartingHandler);
	// Mirror and Generators are empty.
	Starting bool `json:"starting,omitempty"`
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	ok, why := s.Health()
	writeJSON(w, http.StatusOK, StatusResponse{
		Version: s.cfg.Version, Store: s.cfg.Store,
		Mirror: s.cfg.Engine.Status(), Generators: s.generatorStatuses(),
		Healthy: ok, Health: why,
	})
}

func (s *Server) generatorStatuses() []generators.Status {
	if r := s.cfg.Runner(); r != nil {
		return r.Statuses()
	}
	return []generators.Status{}
}

func (s *Server) generators(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.generatorStatuses())
}

// verify compares a snapshot of the store with the part of the log its
// checkpoint covers, so that it is meaningful while the log keeps growing
// (in git mode, the log at the ref: see mirror.VerifyLogCheckpoint). A
// log rewritten since the checkpoint is retried for a while: the engine
// reconciles it in the meantime.
//
// One verification runs at a time (each reads the whole log and the
// store); another request meanwhile gets 429. A client that goes away
// cancels its verification.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	if !s.verifying.TryLock() {
		writeError(w, http.StatusTooManyRequests, ErrVerifyBusy)
		return
	}
	defer s.verifying.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		snap, err := s.cfg.DB.Snapshot()
		if err != nil {
			s.storeError(w, err)
			return
		}
		rep, err := mirror.VerifyLogCheckpoint(r.Context(), snap, s.cfg.Engine.Log(), s.cfg.MaxValueSize)
		snap.Close()
		if errors.Is(err, mirror.ErrResyncing) {
			writeError(w, http.StatusServiceUnavailable, err)
			return
		}
		if errors.Is(err, mirror.ErrLogChanged) && time.Now().Before(deadline) {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
				continue
			}
		}
		if err != nil {
			s.storeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rep)
		return
	}
}

// ErrVerifyBusy: a verification is already running in the daemon.
var ErrVerifyBusy = errors.New("a verification is already running (one at a time); retry when it ends")

// rebuild resets one generator and waits (up to ?wait=, default 5m) until
// its rebuild has been committed.
func (s *Server) rebuild(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	wait := 5 * time.Minute
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("query parameter wait=%q is not a positive duration (such as 30s or 5m)", v))
			return
		}
		wait = d
	}
	runner := s.cfg.Runner()
	if runner == nil {
		writeError(w, http.StatusConflict, errors.New("no generator runs in this daemon"))
		return
	}
	enabled := false
	for _, st := range runner.Statuses() {
		enabled = enabled || st.Name == name
	}
	if !enabled {
		writeError(w, http.StatusNotFound, fmt.Errorf("generator %q is not enabled in the daemon", name))
		return
	}
	if err := runner.Rebuild(name); err != nil {
		s.storeError(w, err)
		return
	}
	runner.Notify()
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	for {
		pending, err := runner.RebuildPending(name)
		if err != nil {
			s.storeError(w, err)
			return
		}
		if !pending {
			for _, st := range runner.Statuses() {
				if st.Name == name {
					writeJSON(w, http.StatusOK, st)
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			writeError(w, http.StatusGatewayTimeout, fmt.Errorf("generator %q is still rebuilding", name))
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}
