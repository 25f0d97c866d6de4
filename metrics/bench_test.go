package metrics

import (
	"testing"
	"time"

	"slipway/record"
)

// What one count costs the work that makes it: LogWritten runs for every
// chunk a step prints, the others once per event.
func BenchmarkCounts(b *testing.B) {
	cfg := `[[repo]]
name = "app"`
	for _, c := range []struct {
		name string
		f    func(m *Metrics)
	}{
		{"LogWritten", func(m *Metrics) { m.LogWritten("build", 512) }},
		{"PushRecorded", func(m *Metrics) { m.PushRecorded("app") }},
		{"BuildFinished", func(m *Metrics) {
			m.BuildFinished(record.Build{Repo: "app"}, record.StatePassed, time.Second)
		}},
		{"GitOperation", func(m *Metrics) { m.GitOperation("push", true, time.Second) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := newTestMetrics(b, cfg)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.f(m)
				}
			})
		})
	}
}
