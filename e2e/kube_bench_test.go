package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"slipway/build/kube/transfer"
	"slipway/internal/kubetest"
	"slipway/record"
)

// BenchmarkKubeVsLocal runs the same builds on the local executor
// (bubblewrap) and on the Kubernetes executor (the test cluster: a real
// kube-apiserver and a test node on this machine), in one daemon (the
// release build), and prints both side by side:
//
//   - push to first step running, p50 over 10 pushes each (the step prints
//     the time it starts; the push's start is taken just before git push);
//
//   - 20 no-op builds queued by one push, drained with 4 at once (build.concurrency
//     and kubernetes.max_concurrent 4): from the push's end to the last
//     build's end. The target is at most 2x the local time; the benchmark
//     fails over it.
//
//     go test -run '^$' -bench BenchmarkKubeVsLocal -benchtime 1x ./e2e
func BenchmarkKubeVsLocal(b *testing.B) {
	bin, err := kubeBins.release()
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	bins, err := kubetest.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		b.Fatal(err)
	}
	c, err := kubetest.NewCluster(ctx, bins, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	helper, err := buildHelper(b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	n, err := kubetest.NewNode(ctx, c, kubetest.NodeOptions{Name: "bench", Images: map[string]kubetest.Image{
		kubeStepImage:   kubetest.HostImage(),
		kubeHelperImage: kubetest.HostImage(kubetest.Bind{Host: helper, Path: transfer.HelperPath}),
	}})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Stop()
	ns := kubeNamespaceOn(b, c)
	alice := newUser(b, "alice")
	cfg := configFor(`
[build]
concurrency = 4
max_per_push = 20

[[repo]]
name = "local"
write = ["alice"]

[[repo]]
name = "onkube"
write = ["alice"]
executor = "kubernetes"
`+ns.config(b, "max_concurrent = 4"), []*user{alice})
	d := startDaemonBin(b, bin, cfg)
	db := d.store(b)
	var next int64 = 1
	startRE := regexp.MustCompile(`started (\d+)`)
	firstStep := func(repo string) []time.Duration {
		src := alice.newProject(b, map[string]string{".slipway.toml": btPipeline("", `echo "started $(date +%s%N)"`)})
		var lat []time.Duration
		for i := range 10 {
			if i > 0 {
				alice.commit(b, src, "n", strconv.Itoa(i))
			}
			start := time.Now()
			alice.mustGit(b, src, "push", d.url(repo), "HEAD:main")
			id := next
			next++
			d.eventually(b, 2*time.Minute, fmt.Sprintf("build #%d to end", id), func() bool {
				bd, err := db.GetBuild(ctx, id)
				return err == nil && bd.State.Final()
			})
			if bd, _ := db.GetBuild(ctx, id); bd.State != record.StatePassed {
				b.Fatalf("%s build #%d: %s (%s)", repo, id, bd.State, bd.Reason)
			}
			m := startRE.FindStringSubmatch(btLog(b, d, alice, id, false))
			if m == nil {
				b.Fatalf("build #%d printed no start time", id)
			}
			ns, _ := strconv.ParseInt(m[1], 10, 64)
			lat = append(lat, time.Unix(0, ns).Sub(start))
		}
		return lat
	}
	drain := func(repo string) time.Duration {
		src := alice.newProject(b, map[string]string{".slipway.toml": btPipeline("", "true")})
		var refs []string
		for i := range 20 {
			refs = append(refs, "HEAD:refs/heads/d"+strconv.Itoa(i))
		}
		alice.mustGit(b, src, append([]string{"push", d.url(repo)}, refs...)...)
		start := time.Now()
		first, last := next, next+19
		next += 20
		d.eventually(b, 5*time.Minute, "20 builds to end", func() bool {
			for id := first; id <= last; id++ {
				if bd, err := db.GetBuild(ctx, id); err != nil || !bd.State.Final() {
					return false
				}
			}
			return true
		})
		took := time.Since(start)
		for id := first; id <= last; id++ {
			if bd, _ := db.GetBuild(ctx, id); bd.State != record.StatePassed {
				b.Fatalf("%s build #%d: %s (%s)", repo, id, bd.State, bd.Reason)
			}
		}
		return took
	}
	b.ResetTimer()
	for range b.N {
		local, onKube := median(firstStep("local")), median(firstStep("onkube"))
		localDrain, kubeDrain := drain("local"), drain("onkube")
		ratio := float64(kubeDrain) / float64(localDrain)
		b.ReportMetric(float64(local.Milliseconds()), "local-first-step-p50-ms")
		b.ReportMetric(float64(onKube.Milliseconds()), "kube-first-step-p50-ms")
		b.ReportMetric(float64(localDrain.Milliseconds()), "local-drain-20-ms")
		b.ReportMetric(float64(kubeDrain.Milliseconds()), "kube-drain-20-ms")
		b.ReportMetric(ratio, "drain-ratio")
		b.Logf("push to first step running, p50 of 10: local %v, kubernetes %v (+%v)", local.Round(time.Millisecond), onKube.Round(time.Millisecond), (onKube - local).Round(time.Millisecond))
		b.Logf("20 no-op builds, 4 at once: local %v, kubernetes %v: %.2fx (target at most 2x)", localDrain.Round(time.Millisecond), kubeDrain.Round(time.Millisecond), ratio)
		if ratio > 2 {
			b.Errorf("20 builds drain in %.2fx the local time on Kubernetes; the target is at most 2x", ratio)
		}
	}
}
