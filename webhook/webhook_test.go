package webhook

import (
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/record"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestCheckAddr(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "::", "10.0.0.1", "172.16.5.4", "192.168.1.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1", "100.64.0.1", "100.127.255.254",
		"224.0.0.1", "ff02::1", "255.255.255.255", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
		"::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::1", "::127.0.0.1", "198.18.0.1", "240.0.0.1",
	}
	allowed := []string{"1.1.1.1", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101"}
	for _, s := range refused {
		if err := CheckAddr(netip.MustParseAddr(s)); err == nil {
			t.Errorf("%s: allowed, want refused", s)
		} else if !strings.Contains(err.Error(), "allow_private") {
			t.Errorf("%s: %v: want the way out named", s, err)
		}
	}
	for _, s := range allowed {
		if err := CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s: %v, want allowed", s, err)
		}
	}
}

// The guard judges the address dialled, whatever name led to it: a name
// that resolves to loopback is refused at the dial.
func TestDialerRefusesWhatANameResolvesTo(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, host := range []string{"127.0.0.1", "localhost", "[::ffff:127.0.0.1]"} {
		addr := net.JoinHostPort(strings.Trim(host, "[]"), port)
		c, err := Dialer(false, time.Second).DialContext(t.Context(), "tcp", addr)
		if err == nil {
			c.Close()
			t.Errorf("%s: dialled, want refused", addr)
			continue
		}
		if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v, want a loopback refusal", addr, err)
		}
	}
	c, err := Dialer(true, time.Second).DialContext(t.Context(), "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("allow_private: %v", err)
	}
	c.Close()
}

func TestSignature(t *testing.T) {
	secret, body := []byte("It's a Secret to Everybody"), []byte("Hello, World!")
	// The example of GitHub's webhook documentation, same algorithm.
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !Verify(secret, body, want) || Verify(secret, []byte("Hello, World?"), want) || Verify([]byte("x"), body, want) {
		t.Fatal("Verify accepts what it should not, or refuses what it should accept")
	}
}

func TestBackoff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := 30 * time.Second
	var total time.Duration
	for n := 1; n < 8; n++ {
		d := Backoff(n, base, r)
		nominal := base << (n - 1)
		if d < nominal*8/10 || d > nominal*12/10 {
			t.Errorf("attempt %d: %v, want within 20%% of %v", n, d, nominal)
		}
		total += d
	}
	// 8 attempts over about an hour.
	if total < 45*time.Minute || total > 80*time.Minute {
		t.Errorf("7 delays add up to %v, want about an hour", total)
	}
	if d := Backoff(40, base, r); d > maxDelay*12/10 {
		t.Errorf("attempt 40: %v, want capped near %v", d, maxDelay)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		h    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false}, {"7", 7 * time.Second, true}, {" 0 ", 0, true}, {"-3", 0, false},
		{"999999", maxDelay, true}, {"soon", 0, false},
		{now.Add(90 * time.Second).Format(http1123), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http1123), 0, true},
		{now.Add(48 * time.Hour).Format(http1123), maxDelay, true},
	} {
		got, ok := RetryAfter(c.h, now)
		if got != c.want || ok != c.ok {
			t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", c.h, got, ok, c.want, c.ok)
		}
	}
}

const http1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

// goldenEvent is a finished build with its record, as the dispatcher
// reads them.
func goldenEvent() (record.Event, Records) {
	at := time.Date(2026, 3, 1, 12, 0, 41, 0, time.UTC)
	e := record.Event{ID: 42, Kind: record.EventBuildFinished, Time: at, Repo: "team/app", Ref: "refs/heads/main",
		Commit: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", User: "alice", PushID: 7, BuildID: 12,
		State: "failed", Reason: `step "go test ./..." exited with status 1`}
	b := record.Build{ID: 12, Repo: "team/app", Ref: "refs/heads/main", Commit: e.Commit, PushID: 7,
		Trigger: record.TriggerPush, Pipeline: "build", State: record.StateFailed, Reason: e.Reason,
		CreatedAt: at.Add(-45 * time.Second), StartedAt: at.Add(-41 * time.Second), FinishedAt: at,
		Steps: []record.StepResult{{Name: "go vet ./...", Duration: 3200 * time.Millisecond},
			{Name: "go test ./...", ExitCode: 1, Duration: 37500 * time.Millisecond}}}
	return e, Records{Build: &b}
}

func TestFormatsGolden(t *testing.T) {
	e, rs := goldenEvent()
	links := func(kind string, id int64) string {
		return "https://ci.example.com/" + map[string]string{"build": "builds", "push": "pushes"}[kind] + "/" + itoa(id)
	}
	p := NewPayload(e, "DELIVERYID", rs, links)
	for _, format := range []string{"json", "slack", "matrix"} {
		body, err := Body(p, format)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(body) {
			t.Fatalf("%s: not JSON: %s", format, body)
		}
		path := filepath.Join("testdata", format+".golden")
		if *update {
			if err := os.WriteFile(path, append(body, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(want)) != string(body) {
			t.Errorf("%s body:\n%s\nwant (%s):\n%s", format, body, path, want)
		}
	}
	wantText := `team/app: build #12 of main (1a2b3c4) failed in 41s: step "go test ./..." exited with status 1 https://ci.example.com/builds/12`
	if p.Text != wantText {
		t.Errorf("text:\n%s\nwant\n%s", p.Text, wantText)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// A body over the cap loses its details, not its validity.
func TestBodyCapped(t *testing.T) {
	e, rs := goldenEvent()
	for i := 0; i < 3000; i++ {
		rs.Build.Steps = append(rs.Build.Steps, record.StepResult{Name: strings.Repeat("x", 40)})
	}
	body, err := Body(NewPayload(e, "ID", rs, nil), "json")
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > record.MaxDeliveryBody || !json.Valid(body) {
		t.Fatalf("body of %d bytes (valid %v), want valid within %d", len(body), json.Valid(body), record.MaxDeliveryBody)
	}
}
