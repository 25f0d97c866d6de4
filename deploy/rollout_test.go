package deploy

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"slipway/internal/sshdtest"
	"slipway/record"
)

// fleet starts n real sshds, one per host, each with its own host key and
// target folder.
func fleet(t *testing.T, n int) ([]*sshdtest.Server, []Target) {
	t.Helper()
	srvs := make([]*sshdtest.Server, n)
	ts := make([]Target, n)
	for i := range n {
		srvs[i], ts[i] = remoteTarget(t)
	}
	return srvs, ts
}

func requests(ts []Target, src, release, activate string) []Request {
	reqs := make([]Request, len(ts))
	for i, t := range ts {
		reqs[i] = Request{Target: t, Source: src, Release: release, Activate: activate, Repo: "app", Env: "prod", Commit: "c0ffee"}
	}
	return reqs
}

// rollOut runs Roll with a log and every host's reported states.
func rollOut(t *testing.T, s *Shipper, reqs []Request, ro Rollout) (RollResult, string, map[int][]record.HostState) {
	t.Helper()
	var log bytes.Buffer
	w := &syncWriter{w: &log}
	for i := range reqs {
		reqs[i].Log = w
	}
	seen := map[int][]record.HostState{}
	res := s.Roll(t.Context(), reqs, ro, func(h HostOutcome) { seen[h.Pos] = append(seen[h.Pos], h.State) })
	return res, log.String(), seen
}

func mustRoll(t *testing.T, s *Shipper, reqs []Request, ro Rollout) RollResult {
	t.Helper()
	res, log, _ := rollOut(t, s, reqs, ro)
	if res.State != record.DeploySucceeded {
		t.Fatalf("rollout of %s: %s: %s\nlog:\n%s", reqs[0].Release, res.State, res.Reason, log)
	}
	return res
}

func currents(t *testing.T, ts []Target) []string {
	t.Helper()
	out := make([]string, len(ts))
	for i, tg := range ts {
		out[i] = currentLink(t, tg)
	}
	return out
}

func wantCurrents(t *testing.T, ts []Target, want ...string) {
	t.Helper()
	got := currents(t, ts)
	for i := range ts {
		if got[i] != "releases/"+want[i] {
			t.Errorf("host %d: current -> %q, want releases/%s (all: %q)", i+1, got[i], want[i], got)
		}
	}
}

func hostStates(res RollResult) []record.HostState {
	out := make([]record.HostState, len(res.Hosts))
	for i, h := range res.Hosts {
		out[i] = h.State
	}
	return out
}

// wantHostStates checks the rollout's hosts ended in the states want.
func wantHostStates(t *testing.T, res RollResult, log string, want ...record.HostState) {
	t.Helper()
	if got := hostStates(res); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("host states %v, want %v\nlog:\n%s", got, want, log)
	}
}

// liveFleet is a fleet with release r1 live on every host.
type liveFleet struct {
	srvs []*sshdtest.Server
	ts   []Target
	s    *Shipper
	src  string     // the build output: files artifacts, version "v1"
	r1   RollResult // the rollout of r1
}

// newLiveFleet starts n hosts and rolls release r1, files artifacts with
// activate, out to them with ro.
func newLiveFleet(t *testing.T, n, files int, activate string, ro Rollout) *liveFleet {
	t.Helper()
	f := &liveFleet{s: &Shipper{}, src: t.TempDir()}
	f.srvs, f.ts = fleet(t, n)
	artifacts(t, f.src, files, "v1")
	f.r1 = mustRoll(t, f.s, requests(f.ts, f.src, "r1", activate), ro)
	return f
}

func TestRollLandsOnEveryHostWithHardLinks(t *testing.T) {
	t.Parallel()
	f := newLiveFleet(t, 3, 20, "", Rollout{})
	ts, s, src := f.ts, f.s, f.src
	artifacts(t, src, 20, "v2", 3)
	res := mustRoll(t, s, requests(ts, src, "r2", ""), Rollout{Parallel: 2})
	if want := "release r2 is live on all 3 hosts"; res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
	wantCurrents(t, ts, "r2", "r2", "r2")
	for i, tg := range ts {
		if res.Hosts[i].State != record.HostLive || res.Hosts[i].Previous != "r1" {
			t.Errorf("host %d: %+v, want live with previous r1", i+1, res.Hosts[i])
		}
		same := filepath.Join(root(tg), "releases/%s/bin/f000")
		if inode(t, fmt.Sprintf(same, "r1")) != inode(t, fmt.Sprintf(same, "r2")) {
			t.Errorf("host %d: unchanged file is not a hard link to the previous release", i+1)
		}
		changed := filepath.Join(root(tg), "releases/%s/bin/f003")
		if inode(t, fmt.Sprintf(changed, "r1")) == inode(t, fmt.Sprintf(changed, "r2")) {
			t.Errorf("host %d: changed file shares the previous release's inode", i+1)
		}
	}
}

func TestRollWithAHostDownSwitchesNothing(t *testing.T) {
	t.Parallel()
	f := newLiveFleet(t, 3, 10, "", Rollout{})
	srvs, ts, s, src := f.srvs, f.ts, f.s, f.src

	srvs[1].Stop()
	artifacts(t, src, 10, "v2", 1)
	res, log, _ := rollOut(t, s, requests(ts, src, "r2", ""), Rollout{})
	if res.State != record.DeployFailed {
		t.Fatalf("state %s (%s), want failed", res.State, res.Reason)
	}
	if !strings.HasPrefix(res.Reason, "nothing was switched: 1 of 3 hosts failed before the switch: "+ts[1].String()+": target unreachable") {
		t.Errorf("reason %q does not name the host and why", res.Reason)
	}
	wantCurrents(t, ts, "r1", "r1", "r1")
	wantHostStates(t, res, log, record.HostSkipped, record.HostFailed, record.HostSkipped)

	// The host back: a second attempt finishes the transfer and switches all.
	srvs[1].Start()
	res = mustRoll(t, s, requests(ts, src, "r2", ""), Rollout{})
	wantCurrents(t, ts, "r2", "r2", "r2")
	if entries, _ := filepath.Glob(filepath.Join(root(ts[0]), "releases", "*"+partialSuffix)); len(entries) != 0 {
		t.Errorf("partial releases left: %v", entries)
	}
}

// failOn makes the shell command fail on the hosts whose target folder
// holds name (the command runs inside releases/<id>).
func failOn(t *testing.T, tg Target, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(root(tg), name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRollActivateFailureInABatchSwitchesEveryHostBack(t *testing.T) {
	t.Parallel()
	activate := `echo "activated $SLIPWAY_RELEASE" >> ../../activations; [ ! -e ../../fail ]`
	f := newLiveFleet(t, 5, 10, activate, Rollout{})
	ts, s, src := f.ts, f.s, f.src

	failOn(t, ts[2], "fail")
	artifacts(t, src, 10, "v2", 1)
	res, log, seen := rollOut(t, s, requests(ts, src, "r2", activate), Rollout{Batch: 2})
	if res.State != record.DeployRolledBack {
		t.Fatalf("state %s (%s), want rolled_back\nlog:\n%s", res.State, res.Reason, log)
	}
	if !strings.HasPrefix(res.Reason, ts[2].String()+": activate failed with exit 1;") {
		t.Errorf("reason %q does not start with the failed host and why", res.Reason)
	}
	wantCurrents(t, ts, "r1", "r1", "r1", "r1", "r1")
	wantHostStates(t, res, log, record.HostRolledBack, record.HostRolledBack, record.HostRolledBack, record.HostRolledBack, record.HostSkipped)
	if got := fmt.Sprint(seen[4]); got != "[prepared skipped]" {
		t.Errorf("host 5 went through %s, want never switched", got)
	}
	// Hosts 1-4 ran r2's activate, then r1's again; host 5 only r1's.
	for i, tg := range ts {
		b, _ := os.ReadFile(filepath.Join(root(tg), "activations"))
		want := "activated r1\nactivated r2\nactivated r1\n"
		if i == 4 {
			want = "activated r1\n"
		}
		if string(b) != want {
			t.Errorf("host %d activations %q, want %q", i+1, b, want)
		}
	}
	if !strings.Contains(log, "["+ts[3].String()+"] ==> another host failed ("+ts[2].String()+": activate failed with exit 1); switching back to release r1") {
		t.Errorf("log does not say why host 4 went back:\n%s", log)
	}
}

func TestRollHealthFailureRollsBackTheBatchAndStops(t *testing.T) {
	t.Parallel()
	health := `[ ! -e ../../unhealthy ]`
	f := newLiveFleet(t, 3, 10, "", Rollout{Health: health})
	ts, s, src := f.ts, f.s, f.src

	failOn(t, ts[0], "unhealthy")
	artifacts(t, src, 10, "v2", 1)
	start := time.Now()
	res, log, _ := rollOut(t, s, requests(ts, src, "r2", ""), Rollout{Batch: 1, Health: health, HealthRetries: 1})
	if res.State != record.DeployRolledBack {
		t.Fatalf("state %s (%s), want rolled_back\nlog:\n%s", res.State, res.Reason, log)
	}
	if !strings.HasPrefix(res.Reason, ts[0].String()+": health check failed with exit 1 (2 attempts);") {
		t.Errorf("reason %q", res.Reason)
	}
	if strings.Count(log, "health (attempt") != 2 {
		t.Errorf("want two health attempts on host 1 and none elsewhere:\n%s", log)
	}
	wantCurrents(t, ts, "r1", "r1", "r1")
	wantHostStates(t, res, log, record.HostRolledBack, record.HostSkipped, record.HostSkipped)
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("took %s", took)
	}
}

func TestRollKillsAHealthCheckThatHangs(t *testing.T) {
	t.Parallel()
	f := newLiveFleet(t, 2, 5, "", Rollout{})
	ts, s, src := f.ts, f.s, f.src
	marker := fmt.Sprintf("hang-%d", time.Now().UnixNano())
	artifacts(t, src, 5, "v2", 1)
	start := time.Now()
	res, log, _ := rollOut(t, s, requests(ts, src, "r2", ""), Rollout{Health: "sleep 600 # " + marker, HealthTimeout: time.Second, HealthRetries: 1})
	took := time.Since(start)
	if res.State != record.DeployRolledBack || !strings.Contains(res.Reason, "health check failed with no answer within 1s (2 attempts)") {
		t.Fatalf("state %s (%s), want rolled_back after a health check with no answer\nlog:\n%s", res.State, res.Reason, log)
	}
	if took > 30*time.Second {
		t.Errorf("a hanging health check held the rollout %s", took)
	}
	wantCurrents(t, ts, "r1", "r1")
	// timeout(1) on the host killed it: nothing of it runs there.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-f", marker).Output()
		if len(bytes.TrimSpace(out)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hanging health command still runs on the host: pids %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRollOfOneHostIsShip(t *testing.T) {
	t.Parallel()
	f := newLiveFleet(t, 1, 5, "", Rollout{})
	tg, s, src, res := f.ts[0], f.s, f.src, f.r1
	if res.Reason != "release r1 is live" {
		t.Errorf("reason %q", res.Reason)
	}
	artifacts(t, src, 5, "v2", 1)
	res, log, _ := rollOut(t, s, requests([]Target{tg}, src, "r2", "exit 3"), Rollout{})
	if res.State != record.DeployRolledBack || res.Reason != "activate failed with exit 3; switched back to release r1" {
		t.Errorf("%s: %q, want Ship's words", res.State, res.Reason)
	}
	if strings.Contains(log, "["+tg.String()+"]") {
		t.Errorf("one host's log lines carry a host label:\n%s", log)
	}
	wantCurrents(t, []Target{tg}, "r1")
}
