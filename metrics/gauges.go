package metrics

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// loadTimeout bounds the store's query for the queue gauge, so that a
// scrape never hangs on a database that does not answer.
const loadTimeout = 5 * time.Second

// WatchBuilds registers the build queue's gauges, read at each scrape
// through load: the builds queued (the store is the queue's record) and
// the builds this daemon's workers run. When load fails, both are left out
// of that scrape (and counted in promhttp_metric_handler_errors_total).
// It may be called once.
func (m *Metrics) WatchBuilds(load func(ctx context.Context) (queued, running int, err error)) error {
	if load == nil {
		return errors.New("metrics: WatchBuilds: no function")
	}
	c := &buildLoad{
		load:    load,
		queued:  prometheus.NewDesc("slipway_builds_queued", "Builds waiting in the queue for a worker.", nil, nil),
		running: prometheus.NewDesc("slipway_builds_running", "Builds this daemon's workers are running.", nil, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register the build queue's gauges: %w", err)
	}
	return nil
}

type buildLoad struct {
	load            func(context.Context) (int, int, error)
	queued, running *prometheus.Desc
}

func (c *buildLoad) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.queued
	ch <- c.running
}

func (c *buildLoad) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	q, r, err := c.load(ctx)
	if err != nil {
		err = fmt.Errorf("read the build queue: %w", err)
		ch <- prometheus.NewInvalidMetric(c.queued, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(q))
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(r))
}

// WatchSSH registers the gauge of open SSH connections, read at each
// scrape through conns: those not authenticated yet (pre-auth) and those
// holding a session slot. It may be called once.
func (m *Metrics) WatchSSH(conns func() (preauth, authenticated int)) error {
	if conns == nil {
		return errors.New("metrics: WatchSSH: no function")
	}
	c := &sshLoad{
		conns: conns,
		desc: prometheus.NewDesc("slipway_ssh_connections",
			"Open SSH connections by state: preauth (not authenticated yet: ssh.max_startups counts these), authenticated (holding a session slot: ssh.max_sessions counts these).",
			[]string{"state"}, nil),
	}
	if err := m.reg.Register(c); err != nil {
		return fmt.Errorf("metrics: register the SSH connections' gauge: %w", err)
	}
	return nil
}

type sshLoad struct {
	conns func() (int, int)
	desc  *prometheus.Desc
}

func (c *sshLoad) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sshLoad) Collect(ch chan<- prometheus.Metric) {
	pre, authed := c.conns()
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(pre), "preauth")
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(authed), "authenticated")
}
