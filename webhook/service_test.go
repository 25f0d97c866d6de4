package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/configs"
	"slipway/record"
	"slipway/store"
)

// hit is one request a test receiver got.
type hit struct {
	uid, event, sig, repo string
	body                  []byte
}

// receiver is an HTTP server on loopback that answers with answer(n) for
// its n-th request (from 1) and keeps what it got.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	hits []hit
	got  chan hit
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter)) *receiver {
	rc := &receiver{got: make(chan hit, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h := hit{uid: r.Header.Get("X-Slipway-Delivery"), event: r.Header.Get("X-Slipway-Event"),
			sig: r.Header.Get("X-Slipway-Signature"), body: body}
		rc.mu.Lock()
		rc.hits = append(rc.hits, h)
		n := len(rc.hits)
		rc.mu.Unlock()
		answer(n, w)
		rc.got <- h
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.hits)
}

const testSecret = "s3cret-for-tests"

// setup opens a store and a configuration whose hooks are written by
// hooks (with %s for the secret file's path).
func setup(t *testing.T, hooks string) (*store.Store, *configs.Live) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(t.Context(), filepath.Join(dir, "slipway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := parse(t, dir, strings.ReplaceAll(hooks, "SECRET", secret))
	return db, configs.NewLive(cfg, configs.Origin{Generation: 1})
}

func parse(t *testing.T, dir, hooks string) *configs.Config {
	t.Helper()
	text := fmt.Sprintf("data_dir = %q\n[[repo]]\nname = \"app\"\n[[repo]]\nname = \"lib\"\n%s", dir, hooks)
	cfg, err := configs.Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func start(t *testing.T, db *store.Store, live configs.Source) *Service {
	t.Helper()
	s, err := New(Options{Config: live, Outbox: db, Deliveries: db, Records: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s
}

func refused(t *testing.T, db *store.Store, repo, env string) int64 {
	t.Helper()
	id, err := db.AddEvent(t.Context(), record.Event{Kind: record.EventReleaseRefused, Repo: repo, Env: env,
		Ref: "refs/release/" + env, Commit: strings.Repeat("ab", 20), User: "bob", Reason: "not live on staging"})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitFor polls the deliveries of repo until cond holds, for at most 20 s.
func waitFor(t *testing.T, db *store.Store, repo string, cond func([]record.Delivery) bool) []record.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds, err := db.ListDeliveries(t.Context(), record.DeliveryQuery{Repo: repo, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries of %s never got there: %+v", repo, ds)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func final(ds []record.Delivery) bool {
	for _, d := range ds {
		if d.State == record.DeliveryPending {
			return false
		}
	}
	return len(ds) > 0
}

func TestRetriedUntilDelivered(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "thanks")
	})
	db, live := setup(t, fmt.Sprintf(`
[webhooks]
retry_base = "10ms"
[[webhook]]
name = "ci"
url = %q
secret_file = "SECRET"
allow_private = true
`, rc.URL+"/hook"))
	start(t, db, live)
	ev := refused(t, db, "app", "prod")
	ds := waitFor(t, db, "app", final)
	if len(ds) != 1 || ds[0].State != record.DeliveryDelivered || ds[0].Attempts != 3 || ds[0].StatusCode != 200 || ds[0].EventID != ev {
		t.Fatalf("deliveries %+v, want one delivered after 3 attempts", ds)
	}
	if rc.count() != 3 {
		t.Fatalf("the receiver got %d requests, want 3", rc.count())
	}
	for _, h := range rc.hits {
		if h.uid != ds[0].UID || h.event != "release.refused" {
			t.Errorf("request with delivery %q event %q, want %q release.refused", h.uid, h.event, ds[0].UID)
		}
		if !Verify([]byte(testSecret), h.body, h.sig) {
			t.Errorf("signature %q does not verify", h.sig)
		}
		if !strings.Contains(string(h.body), `"delivery":"`+ds[0].UID+`"`) {
			t.Errorf("body %s does not name its delivery", h.body)
		}
	}
	d, err := db.GetDelivery(t.Context(), ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.ResponseBody) != "thanks" || !strings.Contains(d.RequestHeaders, "X-Slipway-Signature: sha256=") {
		t.Errorf("kept request headers %q, response body %q", d.RequestHeaders, d.ResponseBody)
	}
}

// The oldest pending delivery of a (hook, repo) goes first: one that
// retries holds back the later events of its repository, not another
// repository's.
func TestOrderPerRepository(t *testing.T) {
	first := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			close(first)
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	db, live := setup(t, fmt.Sprintf(`
[webhooks]
retry_base = "10ms"
[[webhook]]
name = "ci"
url = %q
allow_private = true
events = ["release.refused"]
`, rc.URL))
	start(t, db, live)
	refused(t, db, "app", "e1")
	<-first
	refused(t, db, "app", "e2")
	refused(t, db, "app", "e3")
	refused(t, db, "lib", "e4")
	waitFor(t, db, "app", func(ds []record.Delivery) bool { return len(ds) == 3 && final(ds) })
	var order []string
	for _, h := range rc.hits {
		var env string
		if i := strings.Index(string(h.body), `"env":"`); i >= 0 {
			env = string(h.body[i+7 : i+9])
		}
		order = append(order, env)
	}
	// e1 is retried after its Retry-After (1 s); lib's e4 goes meanwhile.
	want := "e1 e4 e1 e2 e3"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("arrival order %s, want %s", got, want)
	}
}

func TestFinalAnswers(t *testing.T) {
	for _, c := range []struct {
		name, state, errPart string
		answer               func(w http.ResponseWriter)
	}{
		{"404", "failed", "404", func(w http.ResponseWriter) { w.WriteHeader(404) }},
		{"redirect", "failed", `redirect to "https://elsewhere.example/x"`, func(w http.ResponseWriter) {
			w.Header().Set("Location", "https://elsewhere.example/x")
			w.WriteHeader(http.StatusFound)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter) { c.answer(w) })
			db, live := setup(t, fmt.Sprintf("[[webhook]]\nname = \"ci\"\nurl = %q\nallow_private = true\n", rc.URL))
			start(t, db, live)
			refused(t, db, "app", "prod")
			ds := waitFor(t, db, "app", final)
			if ds[0].State != record.DeliveryState(c.state) || ds[0].Attempts != 1 || !strings.Contains(ds[0].Error, c.errPart) {
				t.Fatalf("delivery %+v, want %s at once with %q", ds[0], c.state, c.errPart)
			}
			if rc.count() != 1 {
				t.Fatalf("%d requests, want 1", rc.count())
			}
		})
	}
}

// Without allow_private a hook to loopback (by address or by name) is
// refused at the dial and recorded so, never retried.
func TestLoopbackRefused(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter) {})
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	db, live := setup(t, fmt.Sprintf(`
[webhooks]
retry_base = "10ms"
[[webhook]]
name = "ip"
url = "http://127.0.0.1:%s/"
[[webhook]]
name = "name"
url = "http://localhost:%s/"
`, port, port))
	start(t, db, live)
	refused(t, db, "app", "prod")
	ds := waitFor(t, db, "app", func(ds []record.Delivery) bool { return len(ds) == 2 && final(ds) })
	for _, d := range ds {
		if d.State != record.DeliveryRefused || d.Attempts != 1 || !strings.Contains(d.Error, "loopback") || !strings.Contains(d.Error, "allow_private") {
			t.Errorf("delivery %+v, want refused as loopback after one attempt", d)
		}
	}
	if rc.count() != 0 {
		t.Fatalf("the receiver got %d requests, want none", rc.count())
	}
}

// A reload that removes a hook cancels its pending deliveries.
func TestRemovedHookCancelled(t *testing.T) {
	rc := newReceiver(t, func(_ int, w http.ResponseWriter) { w.WriteHeader(500) })
	hooks := fmt.Sprintf("[webhooks]\nretry_base = \"1h\"\n[[repo.webhook]]\nname = \"ci\"\nurl = %q\nallow_private = true\n", rc.URL)
	db, live := setup(t, "")
	dir := live.Current().DataDir
	live.Swap(parse(t, dir, hooks), configs.Origin{Generation: 2})
	_ = db
	// The hook belongs to the last [[repo]] of the file: lib.
	s := start(t, db, live)
	refused(t, db, "lib", "prod")
	waitFor(t, db, "lib", func(ds []record.Delivery) bool { return len(ds) == 1 && ds[0].Attempts == 1 })
	live.Swap(parse(t, dir, ""), configs.Origin{Generation: 3})
	s.Reloaded()
	ds := waitFor(t, db, "lib", final)
	if ds[0].State != record.DeliveryCancelled || !strings.Contains(ds[0].Error, "removed") {
		t.Fatalf("delivery %+v, want cancelled with the reason", ds[0])
	}
}

// An attempt cut off by a stop is not written; the next start sends the
// delivery again, with the same id.
func TestInFlightSentAgainAfterRestart(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			<-release
		}
	})
	defer close(release)
	db, live := setup(t, fmt.Sprintf("[[webhook]]\nname = \"ci\"\nurl = %q\nallow_private = true\n", rc.URL))
	s, err := New(Options{Config: live, Outbox: db, Deliveries: db, Records: db})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	refused(t, db, "app", "prod")
	waitFor(t, db, "app", func([]record.Delivery) bool { return rc.count() == 1 })
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	ds := waitFor(t, db, "app", func(ds []record.Delivery) bool { return len(ds) == 1 })
	if ds[0].State != record.DeliveryPending || ds[0].Attempts != 0 {
		t.Fatalf("after the stop: %+v, want pending with no attempt written", ds[0])
	}
	start(t, db, live)
	ds = waitFor(t, db, "app", final)
	if ds[0].State != record.DeliveryDelivered || ds[0].Attempts != 1 {
		t.Fatalf("after the restart: %+v, want delivered", ds[0])
	}
	if rc.count() != 2 || rc.hits[0].uid != rc.hits[1].uid {
		t.Fatalf("requests %+v, want two with the same delivery id", rc.hits)
	}
}

// A consumer that starts on a database with history does not replay it.
func TestFirstStartSkipsHistory(t *testing.T) {
	rc := newReceiver(t, func(int, http.ResponseWriter) {})
	db, live := setup(t, fmt.Sprintf("[[webhook]]\nname = \"ci\"\nurl = %q\nallow_private = true\n", rc.URL))
	refused(t, db, "app", "old")
	start(t, db, live)
	refused(t, db, "app", "new")
	ds := waitFor(t, db, "app", final)
	if len(ds) != 1 || !strings.Contains(string(rc.hits[0].body), `"env":"new"`) {
		t.Fatalf("deliveries %+v, want only the new event's", ds)
	}
}
