package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/record"
	"slipway/webhook"
)

// whHit is one request a test receiver got, and when.
type whHit struct {
	at                     time.Time
	uid, event, sig, agent string
	body                   []byte
}

// whReceiver is an HTTP receiver on loopback answering its n-th request
// (from 1) with answer(n, w).
type whReceiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []whHit
}

func whNewReceiver(t testing.TB, answer func(n int, w http.ResponseWriter, r *http.Request)) *whReceiver {
	rc := &whReceiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, whHit{at: at, uid: r.Header.Get("X-Slipway-Delivery"), event: r.Header.Get("X-Slipway-Event"),
			sig: r.Header.Get("X-Slipway-Signature"), agent: r.Header.Get("User-Agent"), body: body})
		n := len(rc.hits)
		rc.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *whReceiver) snapshot() []whHit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.hits)
}

// whSecret writes a webhook secret file and returns its path.
func whSecret(t testing.TB, secret string) string {
	p := filepath.Join(t.TempDir(), "hook-secret")
	if err := os.WriteFile(p, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// whDeliveries is `deliveries REPO --json` as u sees it.
func whDeliveries(t testing.TB, d *daemon, u *user, repo string, args ...string) []webhook.DeliveryView {
	t.Helper()
	return sshJSON[[]webhook.DeliveryView](t, d, u, append([]string{"deliveries", repo, "--json"}, args...)...)
}

// TestWebhookRetriedAcrossKill: a receiver answers 500, 500, then 200;
// the daemon is killed (SIGKILL) after the second attempt. The delivery
// arrives three times with one delivery id and a valid signature, is
// recorded delivered once, and `deliveries` shows the three attempts.
func TestWebhookRetriedAcrossKill(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	rc := whNewReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	const secret = "e2e-webhook-secret"
	d := btStartDaemon(t, configFor(fmt.Sprintf(`
[webhooks]
retry_base = "2s"
[[repo]]
name = "app"
read = ["*"]
write = ["alice"]
  [[repo.webhook]]
  name = "ci"
  url = %q
  secret_file = %q
  allow_private = true
  events = ["build.finished"]
`, rc.URL+"/hook?token=abc", whSecret(t, secret)), []*user{alice}, bob))
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true")})
	id, _ := btPushOne(t, d, alice, src, "main")
	btFinal(t, d, db, alice, "app", id)

	// The second attempt is written; the third is seconds away.
	d.eventually(t, time.Minute, "two attempts written", func() bool {
		ds, err := db.ListDeliveries(t.Context(), record.DeliveryQuery{Repo: "app"})
		return err == nil && len(ds) == 1 && ds[0].Attempts == 2
	})
	d.kill()
	d.start()
	d.eventually(t, time.Minute, "the delivery delivered after the restart", func() bool {
		ds, err := db.ListDeliveries(t.Context(), record.DeliveryQuery{Repo: "app"})
		return err == nil && len(ds) == 1 && ds[0].State == record.DeliveryDelivered
	})

	hits := rc.snapshot()
	if len(hits) != 3 {
		t.Fatalf("the receiver got %d requests, want 3", len(hits))
	}
	for i, h := range hits {
		if h.uid == "" || h.uid != hits[0].uid || h.event != "build.finished" || h.agent != "Slipway" {
			t.Errorf("request %d: delivery %q event %q agent %q; want the first's id, build.finished, Slipway", i+1, h.uid, h.event, h.agent)
		}
		if !webhook.Verify([]byte(secret), h.body, h.sig) {
			t.Errorf("request %d: signature %q does not verify", i+1, h.sig)
		}
		var p webhook.Payload
		if err := json.Unmarshal(h.body, &p); err != nil || p.Version != 1 || p.Build == nil || p.Build.ID != id ||
			p.Build.State != "passed" || p.Delivery != h.uid || p.Branch != "main" || len(p.Build.Steps) != 1 {
			t.Errorf("request %d: payload %s (%v)", i+1, h.body, err)
		}
	}
	ds := whDeliveries(t, d, alice, "app")
	if len(ds) != 1 || ds[0].State != "delivered" || ds[0].Attempts != 3 || ds[0].StatusCode != 200 || ds[0].UID != hits[0].uid {
		t.Fatalf("deliveries shows %+v, want one delivered after 3 attempts", ds)
	}
	list, _, code := d.ssh(alice, "deliveries", "app")
	if code != 0 || !strings.Contains(list, "delivered") || !strings.Contains(list, "build.finished") {
		t.Errorf("deliveries app (exit %d):\n%s", code, list)
	}
	// The URL's token is not shown; a reader may not list the hooks.
	hooks, _, code := d.ssh(alice, "webhooks", "app")
	if code != 0 || !strings.Contains(hooks, "ci") || strings.Contains(hooks, "abc") || !strings.Contains(hooks, "delivered (200)") {
		t.Errorf("webhooks app (exit %d):\n%s", code, hooks)
	}
	if _, errOut, code := d.ssh(bob, "deliveries", "app"); code == 0 {
		t.Errorf("a reader listed the deliveries: %s", errOut)
	}
}

// TestWebhookSSRFRefused: hooks to 127.0.0.1 and to localhost without
// allow_private are refused at the dial, recorded refused, never retried;
// the receiver gets nothing.
func TestWebhookSSRFRefused(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	rc := whNewReceiver(t, func(int, http.ResponseWriter, *http.Request) {})
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	d := btStartDaemon(t, configFor(fmt.Sprintf(`
[webhooks]
retry_base = "100ms"
[[webhook]]
name = "by-address"
url = "http://127.0.0.1:%s/"
[[webhook]]
name = "by-name"
url = "http://localhost:%s/"
`+btRepoConfig, port, port), []*user{alice}, bob))
	db := d.store(t)
	src := alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true")})
	id, _ := btPushOne(t, d, alice, src, "main")
	btFinal(t, d, db, alice, "app", id)
	var ds []webhook.DeliveryView
	d.eventually(t, time.Minute, "both deliveries refused", func() bool {
		ds = whDeliveries(t, d, alice, "app", "--failed")
		return len(ds) == 2
	})
	for _, dv := range ds {
		if dv.State != "refused" || dv.Attempts != 1 || !strings.Contains(dv.Error, "loopback") {
			t.Errorf("delivery %+v, want refused as loopback after one attempt", dv)
		}
	}
	if n := len(rc.snapshot()); n != 0 {
		t.Fatalf("the receiver got %d requests, want none", n)
	}
}

// whPushTimes pushes a new commit to each daemon in turn, n rounds, and
// returns the push durations of each.
func whPushTimes(t testing.TB, u *user, n int, ds []*daemon, dirs []string) [][]time.Duration {
	out := make([][]time.Duration, len(ds))
	for i := 0; i < n; i++ {
		for j, d := range ds {
			u.commit(t, dirs[j], "f", fmt.Sprintf("%d %d\n", i, time.Now().UnixNano()))
			start := time.Now()
			u.mustGit(t, dirs[j], "push", d.url("app"), "main")
			out[j] = append(out[j], time.Since(start))
		}
	}
	return out
}

// TestWebhookHangingReceiver: a receiver that never answers is cut off by
// the timeout, and pushes beside it are as fast as pushes to a daemon
// without the hook (pushes taking turns, medians).
func TestWebhookHangingReceiver(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	hang := make(chan struct{})
	rc := whNewReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(hang) })
	hooked := btStartDaemon(t, configFor(fmt.Sprintf(`
[webhooks]
timeout = "1s"
retry_base = "100ms"
[[webhook]]
name = "hangs"
url = %q
allow_private = true
events = ["push", "build.started", "build.finished"]
`+btRepoConfig, rc.URL), []*user{alice}, bob))
	plain := btStartDaemon(t, configFor(btRepoConfig, []*user{alice}, bob))
	dirs := []string{alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true")}),
		alice.newProject(t, map[string]string{".slipway.toml": btPipeline("", "true")})}
	times := whPushTimes(t, alice, 9, []*daemon{hooked, plain}, dirs)
	with, without := median(times[0]), median(times[1])
	t.Logf("push p50 with a hanging hook %v, without %v (%.2fx)", with, without, float64(with)/float64(without))
	// The target (10%) is the benchmark's; on a loaded CI machine a
	// hanging hook must still not be what a push waits for.
	if with > without*3/2+100*time.Millisecond {
		t.Errorf("push p50 with a hanging hook %v, without %v", with, without)
	}
	hooked.eventually(t, time.Minute, "an attempt cut off by the timeout", func() bool {
		for _, dv := range whDeliveries(t, hooked, alice, "app") {
			if strings.Contains(dv.Error, "no answer within 1s") {
				return true
			}
		}
		return false
	})
}
