package deploy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/internal/manifest"
	"slipway/internal/sshdtest"
	"slipway/record"
)

// TestReleaseShipsTheArtifactsThatWereLiveOnTheRequiredEnvironment: a
// revision built twice with different bytes, one build live on staging,
// then a hand edit of staging's live release: prod receives exactly what
// staging's deployment shipped, with the same digest, from Slipway's kept
// artifacts; the release push names the build; the target carries the
// digest and the manifest.
func TestReleaseShipsTheArtifactsThatWereLiveOnTheRequiredEnvironment(t *testing.T) {
	t.Parallel()
	srv := sshdtest.New(t)
	dir := t.TempDir()
	staging, prod := filepath.Join(dir, "staging"), filepath.Join(t.TempDir(), "prod")
	h := newHarness(t, 2,
		localEnv("staging", staging, `  auto = "main"`),
		remoteEnv("prod", srv, prod, `  requires = "staging"`),
	)
	h.start()
	ctx := t.Context()

	a, ds := h.passedBuild("refs/heads/main", map[string]string{"bin/app": "built once", "stamp": "build 1"})
	onStaging := h.waitState(ds[0].ID, record.DeploySucceeded)
	if !manifest.Valid(a.ArtifactsDigest) || onStaging.Digest != a.ArtifactsDigest {
		t.Fatalf("staging deployment digest %q, build digest %q", onStaging.Digest, a.ArtifactsDigest)
	}
	// The same commit built again, with other bytes: now the newest passed
	// build of the revision, but never live on staging.
	again, _ := h.finish(h.runningAt("refs/heads/other", record.DefaultPipeline, a.Commit,
		map[string]string{"bin/app": "built twice", "stamp": "build 2"}))
	if again.ArtifactsDigest == a.ArtifactsDigest {
		t.Fatal("two different artifact sets have one digest")
	}
	// Someone swaps a file of staging's live release by hand.
	if err := os.WriteFile(filepath.Join(staging, "current", "bin", "app"), []byte("patched on staging"), 0o644); err != nil {
		t.Fatal(err)
	}

	p := h.mustRelease("bob", "prod", a.Commit)
	if p.BuildID != a.ID || p.Digest != a.ArtifactsDigest {
		t.Fatalf("prod deployment ships build %d (%s), want build %d (%s), the one live on staging", p.BuildID, p.Digest, a.ID, a.ArtifactsDigest)
	}
	var announced bytes.Buffer
	h.svc.Announce(ctx, record.Push{Options: []string{NoWaitOption}}, []record.Deployment{p}, &announced)
	want := "deployment #" + itoa(p.ID) + " ships build #" + itoa(a.ID) + " (" + manifest.Short(a.ArtifactsDigest) +
		"), the artifacts that went live on staging in deployment #" + itoa(onStaging.ID)
	if !strings.Contains(announced.String(), want) {
		t.Errorf("the release push does not name what it ships, want %q:\n%s", want, announced.String())
	}
	p = h.waitState(p.ID, record.DeploySucceeded)
	for name, want := range map[string]string{"bin/app": "built once", "stamp": "build 1"} {
		if got, _ := os.ReadFile(filepath.Join(prod, "current", name)); string(got) != want {
			t.Errorf("prod serves %s = %q, want %q (what staging's deployment shipped)", name, got, want)
		}
	}
	if log := h.log(p.ID); !strings.Contains(log, "verifying releases/"+p.ReleaseID+".partial against the artifacts") ||
		!strings.Contains(log, "artifacts of build #"+itoa(a.ID)+" match "+a.ArtifactsDigest) {
		t.Errorf("the deployment log does not say what was verified:\n%s", log)
	}
	marker, _ := os.ReadFile(filepath.Join(prod, "current", markerFile))
	if !strings.Contains(string(marker), "digest="+a.ArtifactsDigest+"\n") {
		t.Errorf("the release marker does not carry the digest:\n%s", marker)
	}
	shipped, err := os.ReadFile(filepath.Join(prod, "current", manifest.FileName))
	if err != nil || manifest.Digest(shipped) != a.ArtifactsDigest {
		t.Errorf("the manifest shipped with the release has digest %s (%v), want %s", manifest.Digest(shipped), err, a.ArtifactsDigest)
	}
	l, err := h.svc.Releases(ctx, "app", "prod")
	if err != nil || len(l.Releases) != 1 {
		t.Fatalf("releases on prod: %+v, %v", l, err)
	}
	if r := l.Releases[0]; !r.Live || r.Digest != a.ArtifactsDigest || r.Deployment != p.ID || r.Build != a.ID {
		t.Errorf("prod's release %+v, want live, %s, deployment %d, build %d", r, a.ArtifactsDigest, p.ID, a.ID)
	}
	if !slicesEqualDigest(h, "staging", "prod", a.ArtifactsDigest) {
		t.Error("the staging and prod deployments of the revision do not show one digest")
	}

	// Where no requires applies, the newest passed build of the revision is
	// shipped, and the push says so.
	s2 := h.mustRelease("bob", "staging", a.Commit)
	if s2.BuildID != again.ID || s2.Digest != again.ArtifactsDigest {
		t.Fatalf("release to staging ships build %d, want the newest passed build %d", s2.BuildID, again.ID)
	}
	announced.Reset()
	h.svc.Announce(ctx, record.Push{Options: []string{NoWaitOption}}, []record.Deployment{s2}, &announced)
	if want := "ships build #" + itoa(again.ID) + " (" + manifest.Short(again.ArtifactsDigest) + "), the newest passed build of " + a.Commit[:7]; !strings.Contains(announced.String(), want) {
		t.Errorf("want %q in:\n%s", want, announced.String())
	}
	h.waitState(s2.ID, record.DeploySucceeded)
}

// slicesEqualDigest reports whether the newest succeeded deployments of
// two environments both shipped digest.
func slicesEqualDigest(h *harness, env1, env2, digest string) bool {
	for _, env := range []string{env1, env2} {
		d, ok, err := h.st.LiveDeployment(h.t.Context(), "app", env)
		if err != nil || !ok || d.Digest != digest {
			return false
		}
	}
	return true
}

// TestChangedKeptArtifactsAreNeverShipped changes one byte of a passed
// build's kept artifacts on Slipway's side: its deployment fails saying so,
// and the target is not touched.
func TestChangedKeptArtifactsAreNeverShipped(t *testing.T) {
	t.Parallel()
	h, prod := startedLocal(t, "prod", "")
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"bin/app": "genuine"})
	if err := os.WriteFile(filepath.Join(h.svc.artifactDir(b.ID), "bin", "app"), []byte("forgery"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := h.releaseAndWait("prod", b.Commit, record.DeployFailed)
	if !strings.Contains(d.Reason, "the artifacts kept for build "+itoa(b.ID)+" are not the ones it recorded") || !strings.Contains(d.Reason, "bin/app differs") {
		t.Errorf("reason %q", d.Reason)
	}
	if _, err := os.Lstat(filepath.Join(prod, "current")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("prod has a current after a refused deployment: %v", err)
	}
}

// TestReleaseThatDiffersOnTheTargetIsNeverSwitchedTo ships through an
// rsync that lets a file change on the target right after the transfer,
// as a disk or a hand could: the verification finds it, the deployment
// fails, current stays where it was.
func TestReleaseThatDiffersOnTheTargetIsNeverSwitchedTo(t *testing.T) {
	t.Parallel()
	bothTargets(t, func(t *testing.T, tg Target) {
		tamper := filepath.Join(t.TempDir(), "rsync-then-tamper")
		script := `#!/bin/sh
rsync "$@" || exit $?
case " $* " in *" --dry-run "*) exit 0 ;; esac
for last; do :; done
echo "changed after the transfer" >> "${last#*:}bin/f000"
`
		if err := os.WriteFile(tamper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		src := t.TempDir()
		artifacts(t, src, 3, "1")
		ship(t, &Shipper{}, Request{Target: tg, Source: src, Release: "r1"})
		artifacts(t, src, 3, "2", 0)
		var log bytes.Buffer
		res, err := (&Shipper{Rsync: tamper}).Ship(t.Context(), Request{Target: tg, Source: src, Release: "r2", Log: &log})
		if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "bin/f000 differs") {
			t.Fatalf("Ship through a tampering transfer: %v, want ErrVerify naming bin/f000\n%s", err, log.String())
		}
		if res.Live != "r1" || currentLink(t, tg) != "releases/r1" {
			t.Errorf("current -> %q (result %+v), want r1 still", currentLink(t, tg), res)
		}
		if _, err := os.Stat(filepath.Join(root(tg), "releases", "r2")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the unverified release was completed: %v", err)
		}
	})
}

// TestRollbackToAReleaseChangedOnTheTargetShipsAnew rolls back to a
// release that someone edited on the target since: it is not switched to
// as it is; the artifacts are shipped anew into a fresh release.
func TestRollbackToAReleaseChangedOnTheTargetShipsAnew(t *testing.T) {
	t.Parallel()
	h, prod := startedLocal(t, "prod", "")
	a, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "A"})
	b, _ := h.passedBuild("refs/heads/main", map[string]string{"app": "B"})
	pa := h.releaseAndWait("prod", a.Commit, record.DeploySucceeded)
	h.releaseAndWait("prod", b.Commit, record.DeploySucceeded)
	if err := os.WriteFile(filepath.Join(prod, "releases", pa.ReleaseID, "app"), []byte("X"), 0o644); err != nil {
		t.Fatal(err)
	}
	rb := h.releaseAndWait("prod", a.Commit, record.DeploySucceeded)
	if rb.Trigger != record.DeployRollback || rb.ReleaseID == pa.ReleaseID || rb.ReleaseID == "" {
		t.Errorf("rollback %+v, want a fresh release instead of the edited %s", rb, pa.ReleaseID)
	}
	if got, _ := os.ReadFile(filepath.Join(prod, "current", "app")); string(got) != "A" {
		t.Errorf("prod serves %q after the rollback, want A", got)
	}
	if log := h.log(rb.ID); !strings.Contains(log, "app differs") || !strings.Contains(log, "shipping the artifacts anew as release "+rb.ReleaseID) {
		t.Errorf("the rollback log does not say why it shipped anew:\n%s", log)
	}
}

func TestDifferencesReadsRsyncItemizedChanges(t *testing.T) {
	t.Parallel()
	out := ".d..t...... ./\n" + // times only: not a difference
		".f..t.og... same-content-new-owner\n" +
		">fcs....... bin/app\n" +
		">f+++++++++ bin/new\n" +
		"cd+++++++++ static/\n" +
		"cLc.T...... link\n" +
		".f...p..... run.sh\n" +
		".f..Tp..... also-perms\n" +
		"*deleting   extra.txt\n" +
		"a line rsync never writes\n"
	want := []string{
		"bin/app differs", "bin/new is missing", "static/ is missing", "link differs",
		"run.sh has other permissions", "also-perms has other permissions", "extra.txt is not in the artifacts",
		`unexpected rsync output "a line rsync never writes"`,
	}
	got := differences(out)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := differences(""); len(d) != 0 {
		t.Fatalf("no output: %v", d)
	}
}

// TestBuildFromBeforeDigestsGetsOneAtItsFirstDeployment: artifacts kept
// by a build recorded before digests existed are deployed, and from then
// on known by the digest computed then.
func TestBuildFromBeforeDigestsGetsOneAtItsFirstDeployment(t *testing.T) {
	t.Parallel()
	h, _ := startedLocal(t, "prod", "")
	b := h.running("refs/heads/main", record.DefaultPipeline, nil)
	writeFiles(t, h.svc.artifactDir(b.ID), map[string]string{"app": "old"})
	h.finish(b)
	d := h.releaseAndWait("prod", b.Commit, record.DeploySucceeded)
	got, err := h.st.GetBuild(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !manifest.Valid(got.ArtifactsDigest) || d.Digest != got.ArtifactsDigest {
		t.Fatalf("build digest %q, deployment digest %q; want one, computed at the deployment", got.ArtifactsDigest, d.Digest)
	}
	if log := h.log(d.ID); !strings.Contains(log, "is from before artifact digests") {
		t.Errorf("log:\n%s", log)
	}
	if err := manifest.Check(h.svc.artifactDir(b.ID), got.ArtifactsDigest); err != nil {
		t.Errorf("kept artifacts against the adopted digest: %v", err)
	}
}
