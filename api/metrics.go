package api

import (
	"net/http"
	"os"
	"time"

	"github.com/mirrord/mirrord/mirror"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the daemon's Prometheus registry: counters and a latency
// histogram fed by applied batches, and gauges read from the engine and
// the generators at each scrape, plus the Go runtime and process metrics
// (memory, open file descriptors).
type Metrics struct {
	reg      *prometheus.Registry
	applies  *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	changed  prometheus.Counter
	invalids prometheus.Counter
}

func newMetrics(s *Server) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mirrord_applies_total", Help: "Batches applied to the store, by kind (tail, reconcile, bulk).",
		}, []string{"kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mirrord_apply_duration_seconds", Help: "Time to build and commit one batch, by kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		changed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrord_events_changed_total", Help: "Events put or deleted in the store.",
		}),
		invalids: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mirrord_invalid_entries_read_total", Help: "Invalid entries met while reading the log (a reconcile reads them again).",
		}),
	}
	m.reg.MustRegister(m.applies, m.latency, m.changed, m.invalids, &stateCollector{s: s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) applied(a mirror.Applied) {
	m.applies.WithLabelValues(a.Kind).Inc()
	m.latency.WithLabelValues(a.Kind).Observe(a.Duration.Seconds())
	m.changed.Add(float64(a.Changed))
	m.invalids.Add(float64(a.Invalid))
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// stateCollector reads the engine's and the generators' state at scrape
// time.
type stateCollector struct{ s *Server }

var (
	descEvents     = prometheus.NewDesc("mirrord_events", "Events in the store.", nil, nil)
	descModifiers  = prometheus.NewDesc("mirrord_modifiers", "Modifiers in the store.", nil, nil)
	descInvalid    = prometheus.NewDesc("mirrord_invalid_entries", "Invalid entries in the part of the log mirrored.", nil, nil)
	descOffset     = prometheus.NewDesc("mirrord_checkpoint_offset_bytes", "Offset of the checkpoint in the log.", nil, nil)
	descLogSize    = prometheus.NewDesc("mirrord_log_size_bytes", "Size of the log.", nil, nil)
	descLag        = prometheus.NewDesc("mirrord_lag_bytes", "Log size minus checkpoint offset.", nil, nil)
	descLastApply  = prometheus.NewDesc("mirrord_last_apply_timestamp_seconds", "When the last batch was applied.", nil, nil)
	descReconciles = prometheus.NewDesc("mirrord_reconciles_total", "Full reconciles completed since start.", nil, nil)
	descResyncs    = prometheus.NewDesc("mirrord_resyncs_total", "Resyncs completed since start.", nil, nil)
	descHealthy    = prometheus.NewDesc("mirrord_healthy", "1 when /healthz answers 200.", nil, nil)
	descMissing    = prometheus.NewDesc("mirrord_log_missing", "1 while the log does not exist.", nil, nil)
	descHeld       = prometheus.NewDesc("mirrord_held_deletions", "Deletions held because the log ends in an incomplete value.", nil, nil)
	gen            = []string{"generator"}
	descGenPos     = prometheus.NewDesc("mirrord_generator_position", "Last change-feed entry a generator's values reflect.", gen, nil)
	descGenLag     = prometheus.NewDesc("mirrord_generator_lag_entries", "Change-feed entries a generator has not processed.", gen, nil)
	descGenErrors  = prometheus.NewDesc("mirrord_generator_failures_total", "Failed runs of a generator since start.", gen, nil)
	descGenFailing = prometheus.NewDesc("mirrord_generator_failing", "1 while a generator's last run failed.", gen, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEvents, descModifiers, descInvalid, descOffset, descLogSize, descLag,
		descLastApply, descReconciles, descResyncs, descHealthy, descMissing, descHeld,
		descGenPos, descGenLag, descGenErrors, descGenFailing} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	st := c.s.cfg.Engine.Status()
	size := st.LogSize
	if fi, err := os.Stat(st.Path); err == nil {
		size = fi.Size()
	}
	gauge(descLogSize, float64(size))
	if cp := st.Checkpoint; cp != nil {
		gauge(descEvents, float64(cp.Events))
		gauge(descModifiers, float64(cp.Modifiers))
		gauge(descInvalid, float64(cp.Invalid))
		gauge(descOffset, float64(cp.Offset))
		gauge(descLag, float64(max(0, size-cp.Offset)))
		if !cp.AppliedAt.IsZero() {
			gauge(descLastApply, float64(cp.AppliedAt.UnixNano())/float64(time.Second))
		}
	}
	counter(descReconciles, float64(st.Reconciles))
	counter(descResyncs, float64(st.Resyncs))
	ok, _ := c.s.Health()
	gauge(descHealthy, b(ok))
	gauge(descMissing, b(st.LogMissing))
	gauge(descHeld, float64(st.Held))
	for _, g := range c.s.generatorStatuses() {
		gauge(descGenPos, float64(g.Position), g.Name)
		gauge(descGenLag, float64(g.Lag), g.Name)
		counter(descGenErrors, float64(g.Failures), g.Name)
		gauge(descGenFailing, b(g.State == "failing"), g.Name)
	}
}
