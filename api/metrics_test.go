package api_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mirrord/mirrord/eventlog"
	"github.com/mirrord/mirrord/internal/testkit"
	"github.com/mirrord/mirrord/schema"
)

type families map[string]*dto.MetricFamily

func parseMetrics(t *testing.T, body string) families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v\n%s", err, body)
	}
	return mfs
}

// scrapeSocket scrapes /metrics over the unix socket.
func (f *fixture) scrapeSocket() families {
	f.t.Helper()
	code, body := httpDo(f.t, f.sock, "GET", "/metrics")
	if code != http.StatusOK {
		f.t.Fatalf("/metrics: %d %s", code, body)
	}
	return parseMetrics(f.t, body)
}

// metric finds the sample of name whose labels include labels ("k=v").
func (m families) metric(t *testing.T, name string, labels ...string) *dto.Metric {
	t.Helper()
	mf, ok := m[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
next:
	for _, s := range mf.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range s.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return s
	}
	t.Fatalf("no sample of %s with %v", name, labels)
	return nil
}

func (m families) value(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	s := m.metric(t, name, labels...)
	switch {
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Untyped != nil:
		return s.GetUntyped().GetValue()
	}
	t.Fatalf("%s%v is neither a gauge nor a counter", name, labels)
	return 0
}

func (m families) wantValue(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	if got := m.value(t, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 40, generators: []string{"summary", "hashtags"}, stall: time.Hour})
	// A reconcile: the application deletes an event by rewriting the log.
	f.events = append(f.events[:7:7], f.events[8:]...)
	if err := eventlog.RewriteFile(f.logPath, f.events); err != nil {
		t.Fatal(err)
	}
	f.sync()
	// A tail with an invalid entry.
	f.appendRaw("{\"id\": \"\"}\n")
	f.appendEvents(3)
	f.sync()
	st := f.eng.Status()
	if st.Checkpoint.Events != 42 || st.Checkpoint.Invalid != 1 || st.Reconciles != 1 {
		t.Fatalf("engine status %+v: want 42 events, 1 invalid, 1 reconcile", st)
	}
	kinds := f.appliedKinds()
	if kinds["bulk"] == 0 || kinds["reconcile"] == 0 || kinds["tail"] == 0 {
		t.Fatalf("applies by kind %v: want bulk, reconcile and tail", kinds)
	}

	check := func(t *testing.T, m families) {
		m.wantValue(t, 42, "mirrord_events")
		m.wantValue(t, float64(modifiers(f.events)), "mirrord_modifiers")
		m.wantValue(t, 1, "mirrord_invalid_entries")
		m.wantValue(t, 0, "mirrord_lag_bytes")
		m.wantValue(t, float64(f.logSize()), "mirrord_log_size_bytes")
		m.wantValue(t, float64(st.Checkpoint.Offset), "mirrord_checkpoint_offset_bytes")
		m.wantValue(t, 1, "mirrord_reconciles_total")
		m.wantValue(t, 0, "mirrord_resyncs_total")
		m.wantValue(t, 1, "mirrord_healthy")
		m.wantValue(t, 0, "mirrord_log_missing")
		m.wantValue(t, 0, "mirrord_held_deletions")
		if ts := m.value(t, "mirrord_last_apply_timestamp_seconds"); ts != float64(st.Checkpoint.AppliedAt.UnixNano())/1e9 {
			t.Errorf("last apply %v, checkpoint applied at %v", ts, st.Checkpoint.AppliedAt)
		}
		for kind, n := range kinds {
			m.wantValue(t, float64(n), "mirrord_applies_total", "kind="+kind)
			h := m.metric(t, "mirrord_apply_duration_seconds", "kind="+kind).GetHistogram()
			if h == nil || h.GetSampleCount() != uint64(n) || len(h.GetBucket()) == 0 {
				t.Errorf("apply duration histogram for %s: %v, want %d samples", kind, h, n)
			}
		}
		if got := len(m["mirrord_applies_total"].GetMetric()); got != len(kinds) {
			t.Errorf("%d kinds of applies, want %d", got, len(kinds))
		}
		if mf := m["mirrord_apply_duration_seconds"]; mf.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("mirrord_apply_duration_seconds is a %v", mf.GetType())
		}
		if m.value(t, "mirrord_events_changed_total") == 0 {
			t.Error("mirrord_events_changed_total is 0")
		}
		m.wantValue(t, 1, "mirrord_invalid_entries_read_total")
		for _, g := range f.runner.Statuses() {
			m.wantValue(t, float64(g.Position), "mirrord_generator_position", "generator="+g.Name)
			m.wantValue(t, float64(g.Lag), "mirrord_generator_lag_entries", "generator="+g.Name)
			m.wantValue(t, 0, "mirrord_generator_failures_total", "generator="+g.Name)
			m.wantValue(t, 0, "mirrord_generator_failing", "generator="+g.Name)
			if g.Position != st.Checkpoint.Seq {
				t.Errorf("generator %s at %d, the feed at %d", g.Name, g.Position, st.Checkpoint.Seq)
			}
		}
		if n := m.value(t, "process_open_fds"); n <= 0 {
			t.Errorf("process_open_fds = %v", n)
		}
		if _, ok := m["go_goroutines"]; !ok {
			t.Error("no Go runtime metrics")
		}
	}
	t.Run("socket", func(t *testing.T) { check(t, f.scrapeSocket()) })

	pub := httptest.NewServer(f.srv.PublicHandler())
	defer pub.Close()
	get := func(method, path string) (int, string) {
		req, _ := http.NewRequestWithContext(testCtx(t, 5*time.Second), method, pub.URL+path, nil)
		resp, err := pub.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("public", func(t *testing.T) {
		code, body := get("GET", "/metrics")
		if code != 200 {
			t.Fatalf("public /metrics: %d", code)
		}
		check(t, parseMetrics(t, body))
		if code, body := get("GET", "/healthz"); code != 200 || body != "caught up\n" {
			t.Errorf("public /healthz: %d %q", code, body)
		}
		// Nothing that reads the store.
		for _, r := range []struct{ method, path string }{
			{"GET", "/v1/get?key=" + "event:" + f.events[0].ID}, {"GET", "/v1/dump"}, {"GET", "/v1/keys"},
			{"GET", "/v1/status"}, {"POST", "/v1/verify"}, {"GET", "/v1/generators"}, {"POST", "/v1/generators/rebuild?name=summary"},
		} {
			if code, body := get(r.method, r.path); code != http.StatusNotFound {
				t.Errorf("public %s %s: %d %.80q, want 404", r.method, r.path, code, body)
			}
		}
	})
	pub.Close()

	// The lag shows bytes appended and not yet mirrored.
	before := f.logSize()
	f.appendEvents(2)
	m := f.scrapeSocket()
	m.wantValue(t, float64(f.logSize()-before), "mirrord_lag_bytes")
	m.wantValue(t, float64(f.logSize()), "mirrord_log_size_bytes")
	m.wantValue(t, 42, "mirrord_events")
	m.wantValue(t, 1, "mirrord_healthy") // catching up, within the stall timeout
}

func TestMetricsUnhealthyAndMissing(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 4, stall: 20 * time.Millisecond})
	f.appendEvents(1)
	testkit.Eventually(t, "mirrord_healthy turns 0 in a stall", func() error {
		if v := f.scrapeSocket().value(t, "mirrord_healthy"); v != 0 {
			return fmt.Errorf("mirrord_healthy %v", v)
		}
		return nil
	})
	code, _ := f.healthz()
	if code != http.StatusServiceUnavailable {
		t.Errorf("/healthz %d while mirrord_healthy is 0", code)
	}

	// A missing log: flagged, and healthy.
	g := newFixture(t, fixtureOptions{events: 4})
	if err := removeLog(g); err != nil {
		t.Fatal(err)
	}
	m := g.scrapeSocket()
	m.wantValue(t, 1, "mirrord_log_missing")
	m.wantValue(t, 1, "mirrord_healthy")
	m.wantValue(t, 4, "mirrord_events")
}

// removeLog removes the log and lets the engine see it (Sync says so).
func removeLog(f *fixture) error {
	if err := os.Remove(f.logPath); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.eng.Sync(ctx); err == nil {
		return fmt.Errorf("Sync on a missing log succeeded")
	}
	return nil
}

// Before anything was mirrored: the state metrics that need a checkpoint
// are absent, the rest is there and parses.
func TestMetricsBeforeFirstSync(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 2, noSync: true})
	m := f.scrapeSocket()
	if _, ok := m["mirrord_events"]; ok {
		t.Error("mirrord_events before anything was mirrored")
	}
	m.wantValue(t, 1, "mirrord_healthy")
	m.wantValue(t, 0, "mirrord_reconciles_total")
	if _, ok := m["mirrord_applies_total"]; ok {
		t.Error("applies counted before any apply")
	}
}

// A generator that fails is reported as failing, with its failures
// counted, in the metrics and in the status.
func TestMetricsFailingGenerator(t *testing.T) {
	f := newFixture(t, fixtureOptions{events: 6, generators: []string{"summary", "hashtags"}})
	// A stored event the generators cannot read (valid JSON, not an event).
	if err := f.db.Put(schema.EventKey("bogus"), map[string]int{"id": 5}); err != nil {
		t.Fatal(err)
	}
	if err := f.runner.Rebuild("summary"); err != nil {
		t.Fatal(err)
	}
	if err := f.runner.CatchUp(testCtx(t, 10*time.Second), 1); err == nil {
		t.Fatal("setup: the rebuild over a bogus event succeeded")
	}
	m := f.scrapeSocket()
	m.wantValue(t, 1, "mirrord_generator_failing", "generator=summary")
	m.wantValue(t, 1, "mirrord_generator_failures_total", "generator=summary")
	m.wantValue(t, 0, "mirrord_generator_failing", "generator=hashtags")
	m.wantValue(t, 0, "mirrord_generator_failures_total", "generator=hashtags")

	st, err := f.client.Status(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range st.Generators {
		if g.Name == "summary" && (g.State != "failing" || !strings.Contains(g.LastError, "bogus") || g.Failures != 1) {
			t.Errorf("status of the failing generator: %+v", g)
		}
	}
	// A failing generator does not make the mirror unhealthy.
	if !st.Healthy {
		t.Errorf("unhealthy because of a generator: %q", st.Health)
	}
}
