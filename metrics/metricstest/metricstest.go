// Package metricstest reads Prometheus series the way a scraper sees
// them, for tests: from a registry (Gather) or from the text a /metrics
// page serves (Parse), then one series by its name and exact labels.
package metricstest

import (
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are metric families by name.
type Families map[string]*dto.MetricFamily

// Gather collects everything g holds.
func Gather(t testing.TB, g prometheus.Gatherer) Families {
	t.Helper()
	fs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := make(Families, len(fs))
	for _, f := range fs {
		out[f.GetName()] = f
	}
	return out
}

// Parse reads Prometheus' text format, as a /metrics page serves it.
func Parse(t testing.TB, r io.Reader) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return Families(fs)
}

// Value is the value of the series name whose labels are exactly the
// given name, value pairs: a counter's or gauge's value, a histogram's
// count. ok is false when there is no such series.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	m := f.find(name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	case m.Untyped != nil:
		return m.Untyped.GetValue(), true
	}
	return 0, false
}

// Sum is the sum of the observations of the histogram series name with
// exactly labels.
func (f Families) Sum(name string, labels ...string) (sum float64, ok bool) {
	m := f.find(name, labels)
	if m == nil || m.Histogram == nil {
		return 0, false
	}
	return m.Histogram.GetSampleSum(), true
}

// Series counts the series of name.
func (f Families) Series(name string) int {
	if fam := f[name]; fam != nil {
		return len(fam.Metric)
	}
	return 0
}

func (f Families) find(name string, labels []string) *dto.Metric {
	fam := f[name]
	if fam == nil || len(labels)%2 != 0 {
		return nil
	}
	want := make(map[string]string, len(labels)/2)
	for i := 0; i < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		return m
	}
	return nil
}
