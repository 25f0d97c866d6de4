package e2e

import (
	"crypto/rand"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"slipway/record"
)

// BenchmarkWebhookLatency: from a build's result being recorded (its row's
// finished_at) to its build.finished delivery arriving at a receiver on
// loopback, p50 over the pushes (target 100 ms; the benchmark fails over
// it). The release build of the daemon.
//
//	go test -run '^$' -bench BenchmarkWebhookLatency -benchtime 20x ./e2e
func BenchmarkWebhookLatency(b *testing.B) {
	bin := mustReleaseBin(b)
	u := newUser(b, "bench")
	arrived := make(chan whHit, 1000)
	rc := whNewReceiver(b, func(_ int, _ http.ResponseWriter, r *http.Request) {
		arrived <- whHit{at: time.Now(), uid: r.Header.Get("X-Slipway-Delivery")}
	})
	d := startDaemonBin(b, bin, configFor(fmt.Sprintf(`
[[repo]]
name = "app"
write = ["bench"]
[[webhook]]
name = "bench"
url = %q
allow_private = true
events = ["build.finished"]
`, rc.URL), []*user{u}))
	db := d.store(b)
	src := u.newProject(b, map[string]string{".slipway.toml": btPipeline("", "true")})
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i > 0 {
			u.commit(b, src, "n", strconv.Itoa(i))
		}
		out := u.mustGit(b, src, "push", d.url("app"), "HEAD:main")
		m := btQueuedRE.FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("the push queued no build:\n%s", out)
		}
		id, _ := strconv.ParseInt(m[1], 10, 64)
		var h whHit
		select {
		case h = <-arrived:
		case <-time.After(time.Minute):
			b.Fatalf("no delivery of build #%d\n%s", id, d.logs)
		}
		bd, err := db.GetBuild(b.Context(), id)
		if err != nil || !bd.State.Final() {
			b.Fatalf("build #%d: %+v %v", id, bd, err)
		}
		lat = append(lat, h.at.Sub(bd.FinishedAt))
	}
	b.StopTimer()
	p50, p90 := percentile(lat, 50), percentile(lat, 90)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
	b.Logf("build recorded to delivery arrived: p50 %v, p90 %v over %d builds", p50, p90, len(lat))
	if p50 > 100*time.Millisecond {
		b.Fatalf("p50 %v over the 100 ms target", p50)
	}
}

// BenchmarkWebhookBacklogPushes: 1,000 deliveries queued to a receiver
// that takes 2 s to answer each do not slow pushes: pushes to a daemon
// with that backlog taking turns with pushes to one without, p50 against
// p50 (target +5%; the benchmark fails over it).
//
//	go test -run '^$' -bench BenchmarkWebhookBacklogPushes -benchtime 1x ./e2e
func BenchmarkWebhookBacklogPushes(b *testing.B) {
	bin := mustReleaseBin(b)
	u := newUser(b, "bench")
	stop := make(chan struct{})
	slow := whNewReceiver(b, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-stop:
		case <-r.Context().Done():
		}
	})
	b.Cleanup(func() { close(stop) })
	repo := "[[repo]]\nname = \"app\"\nwrite = [\"bench\"]\n"
	backlogged := startDaemonBin(b, bin, configFor(fmt.Sprintf(`
[[webhook]]
name = "slow"
url = %q
allow_private = true
events = ["push", "build.finished"]
`, slow.URL)+repo, []*user{u}))
	plain := startDaemonBin(b, bin, configFor(repo, []*user{u}))
	db := backlogged.store(b)
	var ds []record.Delivery
	for i := range 1000 {
		ds = append(ds, record.Delivery{UID: rand.Text(), Hook: "slow", Repo: fmt.Sprintf("r%d", i%10), URL: slow.URL,
			EventID: int64(i + 1), EventKind: record.EventPush, Format: "json", RequestBody: []byte(`{"version":1}`)})
	}
	if _, err := db.FanOutDeliveries(b.Context(), ds, "", 0); err != nil {
		b.Fatal(err)
	}
	dirs := []string{u.newProject(b, map[string]string{".slipway.toml": btPipeline("", "true")}),
		u.newProject(b, map[string]string{".slipway.toml": btPipeline("", "true")})}
	// A first push each: warm, and the backlogged daemon's senders woken.
	whPushTimes(b, u, 1, []*daemon{backlogged, plain}, dirs)
	b.ResetTimer()
	var with, without []time.Duration
	for range b.N {
		times := whPushTimes(b, u, 25, []*daemon{backlogged, plain}, dirs)
		with, without = append(with, times[0]...), append(without, times[1]...)
	}
	b.StopTimer()
	pending, err := db.PendingGroups(b.Context())
	if err != nil || len(pending) < 10 {
		b.Fatalf("the backlog is gone before the end (%d groups pending, %v)", len(pending), err)
	}
	w, wo := median(with), median(without)
	ratio := float64(w) / float64(wo)
	b.ReportMetric(ratio, "p50-ratio")
	b.Logf("push p50 with 1,000 deliveries queued to a slow receiver %v, without %v: %.3fx", w, wo, ratio)
	if ratio > 1.05 {
		b.Fatalf("push p50 %.3fx with the backlog, over the 1.05x target", ratio)
	}
}
