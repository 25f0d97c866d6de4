package configs

import (
	"context"
	"strings"
	"sync"
	"testing"
)

func parseOK(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Loader{}.Parse([]byte(text), "slipway.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const reloadBase = `
data_dir = "/srv/a"
[ssh]
listen = "127.0.0.1:2222"
[build]
concurrency = 2
max_log_bytes = 1000
[[user]]
name = "alice"
keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]
admin = true
[[repo]]
name = "app"
`

func TestKeepRestartSettings(t *testing.T) {
	t.Parallel()
	running := parseOK(t, reloadBase)
	next := parseOK(t, strings.NewReplacer(`"/srv/a"`, `"/srv/b"`, `"127.0.0.1:2222"`, `"127.0.0.1:2223"`,
		"concurrency = 2", "concurrency = 4", "max_log_bytes = 1000", "max_log_bytes = 2000").Replace(reloadBase))
	changes := KeepRestartSettings(running, next)
	var keys []string
	for _, c := range changes {
		keys = append(keys, c.Key)
	}
	// The host key's default lives in the data dir: it moves with it.
	if got := strings.Join(keys, " "); got != "data_dir ssh.listen ssh.host_key build.concurrency" {
		t.Errorf("restart settings reported: %q (%v)", got, changes)
	}
	if next.DataDir != "/srv/a" || next.SSH.Listen != "127.0.0.1:2222" || next.Build.Concurrency != 2 {
		t.Errorf("restart settings not kept at their running values: %q %q %d", next.DataDir, next.SSH.Listen, next.Build.Concurrency)
	}
	if next.Build.MaxLogBytes != 2000 {
		t.Errorf("a setting that applies live was not applied: max_log_bytes %d", next.Build.MaxLogBytes)
	}
	if c := changes[1].String(); c != `ssh.listen "127.0.0.1:2222" → "127.0.0.1:2223"` {
		t.Errorf("change shown as %q", c)
	}
	if again := KeepRestartSettings(running, parseOK(t, reloadBase)); len(again) != 0 {
		t.Errorf("the same file reports restart settings: %v", again)
	}
}

func TestSummary(t *testing.T) {
	t.Parallel()
	running := parseOK(t, reloadBase)
	next := parseOK(t, strings.Replace(reloadBase, `name = "app"`, "name = \"svc\"\n[[user]]\nname = \"bob\"\nkeys = [\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFbsE2ZDWmDNrnwo0+9MDsG9UN3M7+6D5MqeD/L4dkc7\"]", 1))
	if got, want := Summary(running, next), "users +bob; repos +svc -app"; got != want {
		t.Errorf("Summary = %q, want %q", got, want)
	}
	if got := Summary(running, running); got != "no user or repository added or removed" {
		t.Errorf("Summary of no change = %q", got)
	}
}

// TestLiveSnapshots: work keeps the snapshot its context carries while
// the Live moves on, and readers racing a swap see one whole
// configuration or the other.
func TestLiveSnapshots(t *testing.T) {
	t.Parallel()
	a := parseOK(t, reloadBase)
	b := parseOK(t, strings.Replace(reloadBase, `name = "app"`, `name = "svc"`, 1))
	live := NewLive(a, Origin{Generation: 1})
	ctx := WithSnapshot(context.Background(), live.Current())
	if old := live.Swap(b, Origin{Generation: 2, Reason: "test"}); old != a {
		t.Errorf("Swap returned %p, want the configuration it replaced %p", old, a)
	}
	if Snapshot(ctx, live) != a {
		t.Error("the snapshot of work that started before the swap changed")
	}
	if Snapshot(context.Background(), live) != b || live.Current().Origin().Generation != 2 {
		t.Error("new work does not get the swapped configuration and its origin")
	}
	if Snapshot(context.Background(), a) != a {
		t.Error("a Config is not its own source")
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				if i%2 == 0 {
					// A Config is never changed once in force: each swap
					// puts in a new one, as each reload does.
					text := reloadBase
					if i == 2 {
						text = strings.Replace(reloadBase, `name = "app"`, `name = "svc"`, 1)
					}
					c, err := Loader{}.Parse([]byte(text), "slipway.toml")
					if err != nil {
						t.Error(err)
						return
					}
					live.Swap(c, Origin{})
					continue
				}
				c := live.Current()
				_, app := c.Repo("app")
				_, svc := c.Repo("svc")
				if app == svc {
					t.Error("a reader saw a configuration with both or neither repository")
					return
				}
			}
		}()
	}
	wg.Wait()
}
