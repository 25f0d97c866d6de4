package console

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/record"
)

func TestParseTakesFlagsAfterArguments(t *testing.T) {
	var stderr bytes.Buffer
	f, ok := parse("log", []string{"12", "-f"}, &stderr, false, true)
	if !ok || !f.follow || len(f.args) != 1 || f.args[0] != "12" {
		t.Fatalf("parse(log 12 -f) = %+v, %v", f, ok)
	}
	f, ok = parse("builds", []string{"--limit", "5", "app", "--json"}, &stderr, true, false)
	if !ok || !f.json || f.limit != 5 || len(f.args) != 1 || f.args[0] != "app" {
		t.Fatalf("parse(builds --limit 5 app --json) = %+v, %v", f, ok)
	}
	if _, ok := parse("builds", []string{"--bogus"}, &stderr, true, false); ok || !strings.Contains(stderr.String(), "bogus") {
		t.Fatalf("an unknown flag was accepted: %q", stderr.String())
	}
}

// fakeBuilds is a map-backed Builds: the rights checks are the console's, so
// they are tested here without a daemon (the e2e tests run the real one).
type fakeBuilds struct {
	builds    map[int64]record.Build
	logs      map[int64]string // what Follow copies; "log of REPO" if none
	cancelled []int64
}

func (f *fakeBuilds) List(_ context.Context, repo string, _ int) ([]record.Build, error) {
	var out []record.Build
	for _, b := range f.builds {
		if repo == "" || b.Repo == repo {
			out = append(out, b)
		}
	}
	return out, nil
}

func (f *fakeBuilds) Get(_ context.Context, id int64) (record.Build, error) {
	b, ok := f.builds[id]
	if !ok {
		return record.Build{}, record.ErrNotFound
	}
	return b, nil
}

func (f *fakeBuilds) Follow(_ context.Context, id int64, w io.Writer, _ bool) error {
	if l, ok := f.logs[id]; ok {
		// As the log store copies: in pieces, here a byte at a time.
		for i := range len(l) {
			if _, err := w.Write([]byte{l[i]}); err != nil {
				return err
			}
		}
		return nil
	}
	_, err := io.WriteString(w, "log of "+f.builds[id].Repo+"\n")
	return err
}

func (f *fakeBuilds) CancelBy(_ context.Context, id int64, _ string) error {
	f.cancelled = append(f.cancelled, id)
	return nil
}

func (f *fakeBuilds) Retry(_ context.Context, id int64) (record.Build, error) {
	return record.Build{ID: 99, Repo: f.builds[id].Repo}, nil
}

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMHVGCVEtr5qxn1dYi/5xpqoXWVgHqsmnZ0Dwt0eBXYT a"
	keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEK5ZPWdR0HSt4JUcmgH4a8lDYp/Jpe8CXn1l80kwVUb b"
)

func TestRightsOnBuilds(t *testing.T) {
	cfg, err := configs.Parse([]byte(`
[[user]]
name = "reader"
keys = ["`+keyA+`"]
[[user]]
name = "writer"
keys = ["`+keyB+`"]
[[repo]]
name = "app"
read = ["reader"]
write = ["writer"]
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBuilds{builds: map[int64]record.Build{
		1: {ID: 1, Repo: "app", Ref: "refs/heads/main", State: record.StateRunning},
		2: {ID: 2, Repo: "secret", Ref: "refs/heads/main", State: record.StateRunning},
	}}
	cmds := Commands(Options{Config: cfg, Builds: fb})
	run := func(user, name string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := cmds[name].Run(t.Context(), gitserver.Caller{User: user}, args, &out, &errb)
		return out.String(), errb.String(), code
	}
	if out, _, code := run("reader", "builds"); code != 0 || !strings.Contains(out, "app") || strings.Contains(out, "secret") {
		t.Fatalf("reader's builds (exit %d):\n%s", code, out)
	}
	if _, stderr, code := run("reader", "log", "2"); code != 1 || !strings.Contains(stderr, "build 2 not found") {
		t.Fatalf("reader reading a hidden build: exit %d, %q", code, stderr)
	}
	if _, stderr, code := run("reader", "cancel", "1"); code != 1 || !strings.Contains(stderr, "may read") {
		t.Fatalf("reader cancelling: exit %d, %q", code, stderr)
	}
	if _, _, code := run("writer", "cancel", "1"); code != 0 || len(fb.cancelled) != 1 {
		t.Fatalf("writer cancelling: exit %d, cancelled %v", code, fb.cancelled)
	}
	if _, stderr, code := run("writer", "cancel", "x"); code != 1 || !strings.Contains(stderr, "not a build id") {
		t.Fatalf("cancel x: exit %d, %q", code, stderr)
	}
}

// fakeDeploys is a map-backed Deploys for the console's own checks.
type fakeDeploys struct {
	deps    map[int64]record.Deployment
	logs    map[int64]string // what Follow copies; "deploy log of REPO" if none
	retried []string         // "id by user"
}

func (f *fakeDeploys) List(_ context.Context, repo, _ string, _ int) ([]record.Deployment, error) {
	var out []record.Deployment
	for _, d := range f.deps {
		if d.Repo == repo {
			out = append(out, d)
		}
	}
	return out, nil
}
func (f *fakeDeploys) Releases(context.Context, string, string) (deploy.Listing, error) {
	return deploy.Listing{}, nil
}
func (f *fakeDeploys) Follow(_ context.Context, id int64, w io.Writer, _ bool) error {
	if l, ok := f.logs[id]; ok {
		_, err := io.WriteString(w, l)
		return err
	}
	_, err := io.WriteString(w, "deploy log of "+f.deps[id].Repo+"\n")
	return err
}
func (f *fakeDeploys) Get(_ context.Context, id int64) (record.Deployment, error) {
	d, ok := f.deps[id]
	if !ok {
		return record.Deployment{}, record.ErrNotFound
	}
	return d, nil
}
func (f *fakeDeploys) Retry(_ context.Context, id int64, user string) (record.Deployment, error) {
	f.retried = append(f.retried, fmt.Sprintf("%d by %s", id, user))
	return record.Deployment{ID: 100, Repo: f.deps[id].Repo, Env: f.deps[id].Env}, nil
}

func TestDeploymentLogAndRetryAreHiddenLikeBuilds(t *testing.T) {
	cfg, err := configs.Parse([]byte(`
[[user]]
name = "reader"
keys = ["`+keyA+`"]
[[repo]]
name = "app"
read = ["reader"]
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	fd := &fakeDeploys{deps: map[int64]record.Deployment{
		7: {ID: 7, Repo: "app", Env: "prod", State: record.DeployFailed},
		8: {ID: 8, Repo: "secret", Env: "prod", State: record.DeployFailed},
	}}
	cmds := Commands(Options{Config: cfg, Deploys: fd})
	run := func(name string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := cmds[name].Run(t.Context(), gitserver.Caller{User: "reader"}, args, &out, &errb)
		return out.String(), errb.String(), code
	}
	if out, _, code := run("log", "deploy", "7"); code != 0 || !strings.Contains(out, "deploy log of app") {
		t.Fatalf("log deploy 7: exit %d %q", code, out)
	}
	for _, args := range [][]string{{"log", "deploy", "8"}, {"retry", "deploy", "8"}, {"retry", "deploy", "9"}} {
		if _, stderr, code := run(args[0], args[1:]...); code != 1 || !strings.Contains(stderr, "not found") {
			t.Errorf("%v: exit %d, %q; want not found", args, code, stderr)
		}
	}
	if _, stderr, code := run("retry", "deploy", "x"); code != 1 || !strings.Contains(stderr, "not a deployment id") {
		t.Errorf("retry deploy x: exit %d, %q", code, stderr)
	}
	// The deployment service decides whether the reader may release; the
	// console hands it the caller.
	if out, _, code := run("retry", "deploy", "7"); code != 0 || !strings.Contains(out, "deployment #100 queued") ||
		len(fd.retried) != 1 || fd.retried[0] != "7 by reader" {
		t.Fatalf("retry deploy 7: exit %d %q, retried %v", code, out, fd.retried)
	}
}

// hostile is what a step or an activate script may print to take over the
// terminal of whoever reads the log: a carriage return and erase-line
// over the line before, a window title, a clipboard write, hidden text and
// a fake result; and a colour, which stays.
const hostile = "[00:00.100] │ real output\r\x1b[2K\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07\x1b[8mhidden\n" +
	"[00:00.200] │ \x1b[31mred\x1b[0m \u009b1A\xff\n"

// hostileShown is hostile as a terminal must get it.
const hostileShown = "[00:00.100] │ real output\\r\\x1b[2K\\x1b]0;title\\x07\\x1b]52;c;ZXZpbA==\\x07\\x1b[8mhidden\n" +
	"[00:00.200] │ \x1b[31mred\x1b[0m \\u009b1A\\xff\n"

// TestLogsAreShownSafeAndRawOnRequest: `log`, `log -f` and `log deploy`
// render what the log holds safe for a terminal (visible escapes, colours
// kept); --raw gives the stored bytes; the listings escape reasons, which
// quote a step's command or what a target printed.
func TestLogsAreShownSafeAndRawOnRequest(t *testing.T) {
	cfg, err := configs.Parse([]byte(`
[[user]]
name = "reader"
keys = ["`+keyA+`"]
[[repo]]
name = "app"
read = ["reader"]
`), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	reason := "step 1 (printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1"
	fb := &fakeBuilds{
		builds: map[int64]record.Build{3: {ID: 3, Repo: "app", Ref: "refs/heads/main", State: record.StateFailed, Reason: reason}},
		logs:   map[int64]string{3: hostile},
	}
	fd := &fakeDeploys{
		deps: map[int64]record.Deployment{7: {ID: 7, Repo: "app", Env: "prod", State: record.DeployFailed, Reason: "activate: exit 1: \x1b[1Adone\r"}},
		logs: map[int64]string{7: hostile},
	}
	cmds := Commands(Options{Config: cfg, Builds: fb, Deploys: fd})
	run := func(name string, args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := cmds[name].Run(t.Context(), gitserver.Caller{User: "reader"}, args, &out, &errb)
		return out.String(), code
	}
	if out, code := run("log", "3"); code != 0 || out != hostileShown {
		t.Errorf("log 3: exit %d\n got %q\nwant %q", code, out, hostileShown)
	}
	wantEnd := `build #3 failed (step 1 (printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1)` + "\n"
	if out, code := run("log", "3", "-f"); code != 1 || out != hostileShown+wantEnd {
		t.Errorf("log 3 -f: exit %d\n got %q\nwant %q", code, out, hostileShown+wantEnd)
	}
	if out, code := run("log", "deploy", "7"); code != 0 || out != hostileShown {
		t.Errorf("log deploy 7: exit %d\n got %q\nwant %q", code, out, hostileShown)
	}
	for _, args := range [][]string{{"3", "--raw"}, {"--raw", "deploy", "7"}} {
		if out, code := run("log", args...); code != 0 || out != hostile {
			t.Errorf("log %v: exit %d\n got %q\nwant the stored bytes %q", args, code, out, hostile)
		}
	}
	if out, _ := run("builds", "app"); !strings.Contains(out, `printf '\x1b]0;t\x07\r\nbuild #3 passed') exited 1`) || strings.ContainsAny(out, "\x1b\r\a") {
		t.Errorf("builds app does not escape the reason:\n%q", out)
	}
	if out, _ := run("deploys", "app"); !strings.Contains(out, `activate: exit 1: \x1b[1Adone\r`) || strings.ContainsAny(out, "\x1b\r") {
		t.Errorf("deploys app does not escape the reason:\n%q", out)
	}
}
