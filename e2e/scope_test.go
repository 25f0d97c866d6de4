package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/record"
)

// TestSecretsAreScopedToBranches: a secret scoped to main reaches main's
// builds only; a feature branch's build does not get it (not in its
// environment, nor by any transformation of it in its log), and its log
// says it was withheld and why; a deploy-time secret reaches the staging
// deployment's activate and no build.
func TestSecretsAreScopedToBranches(t *testing.T) {
	t.Parallel()
	alice, bob := btUsers(t)
	dir := t.TempDir()
	mainTok, deployTok := "main-s3cret-"+btMarker("m"), "deploy-s3cret-"+btMarker("d")
	for name, v := range map[string]string{"main": mainTok, "deploy": deployTok} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	staging := filepath.Join(dir, "staging")
	d := btStartDaemon(t, configFor(fmt.Sprintf(`
[[repo]]
name = "app"
read = ["*"]
write = ["alice"]
  [[repo.secret]]
  name = "MAIN_TOKEN"
  file = %q
  branches = ["main"]
  [[repo.secret]]
  name = "DEPLOY_TOKEN"
  file = %q
  environments = ["staging"]
  [[repo.environment]]
  name = "staging"
  target = %q
  auto = "main"
  activate = "printf '%%s' \"$DEPLOY_TOKEN\" | rev > ../../activate-saw; printf '%%s' \"${MAIN_TOKEN:-none}\" | rev >> ../../activate-saw"
`, filepath.Join(dir, "main"), filepath.Join(dir, "deploy"), staging), []*user{alice}, bob))
	db := d.store(t)
	// rev turns a value into one masking cannot know: what the log shows
	// is what the step had.
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("artifacts = [\"out\"]\n",
			`echo "main=$(printf '%s' "${MAIN_TOKEN:-none}" | rev)"`,
			`echo "deploy=$(printf '%s' "${DEPLOY_TOKEN:-none}" | rev)"`,
			`mkdir -p out && env > out/env`),
	})
	rev := func(s string) string {
		r := []rune(s)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r)
	}

	feature, _ := btPushOne(t, d, alice, src, "HEAD:refs/heads/feature")
	btPassed(t, d, db, bob, "app", feature, "feature build")
	log := btLog(t, d, bob, feature, false)
	if !strings.Contains(log, "main=enon") || !strings.Contains(log, "deploy=enon") || strings.Contains(log, rev(mainTok)) {
		t.Errorf("a feature branch's build saw a secret:\n%s", log)
	}
	if !strings.Contains(log, "secrets withheld from refs/heads/feature: MAIN_TOKEN (branches = [main]); DEPLOY_TOKEN (deployments to staging only)") {
		t.Errorf("the feature build's log does not say which secrets were withheld:\n%s", log)
	}
	// Nothing the feature build left behind holds the value either.
	if err := filepath.WalkDir(d.dataDir(), func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), mainTok) || strings.Contains(string(b), rev(mainTok)) {
			return fmt.Errorf("%s holds main's secret", p)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}

	mainBuild, _ := btPushOne(t, d, alice, src, "main")
	mb := btPassed(t, d, db, bob, "app", mainBuild, "main build")
	log = btLog(t, d, bob, mainBuild, false)
	if !strings.Contains(log, "main="+rev(mainTok)) || !strings.Contains(log, "deploy=enon") {
		t.Errorf("main's build did not get exactly its secret:\n%s", log)
	}
	// activate writes its file in two steps: read it once the deployment
	// has ended, not as soon as it exists.
	if dep := dtWaitDeploy(t, d, bob, "app", "staging", mb.Commit, 0); dep.State != record.DeploySucceeded {
		t.Fatalf("staging deployment: %s (%s)", dep.State, dep.Reason)
	}
	b, _ := os.ReadFile(filepath.Join(staging, "activate-saw"))
	if got := string(b); got != rev(deployTok)+"enon" {
		t.Errorf("staging's activate saw %q; want the deploy secret and not main's", got)
	}
}

// TestCacheIsScopedToBranches: a feature branch starts from a copy of
// main's cache and cannot change main's: what it plants there is not what
// main's next build finds.
func TestCacheIsScopedToBranches(t *testing.T) {
	t.Parallel()
	alice, bob, d := btApp(t, "")
	db := d.store(t)
	src := alice.newProject(t, map[string]string{
		".slipway.toml": btPipeline("cache = true\n",
			`echo "tool=$(cat /cache/tool 2>/dev/null || echo none)"`,
			`[ -f /cache/tool ] || echo trusted > /cache/tool`,
			`if [ "$SLIPWAY_BRANCH" != main ]; then echo planted > /cache/tool; mkdir -p /cache/bin && echo evil > /cache/bin/go; fi`),
	})
	first, _ := btPushOne(t, d, alice, src, "main")
	btPassed(t, d, db, bob, "app", first, "main build")
	before := treeSum(t, btCache(d, "app"))

	feature, _ := btPushOne(t, d, alice, src, "HEAD:refs/heads/feature")
	btPassed(t, d, db, bob, "app", feature, "feature build")
	log := btLog(t, d, bob, feature, false)
	if !strings.Contains(log, "tool=trusted") || !strings.Contains(log, "starting from a copy of main's") {
		t.Errorf("the feature branch did not start from a copy of main's cache:\n%s", log)
	}
	if after := treeSum(t, btCache(d, "app")); after != before {
		t.Errorf("main's cache changed during the feature build: %s -> %s", before, after)
	}
	alice.commit(t, src, "f", "again\n")
	again, _ := btPushOne(t, d, alice, src, "main")
	btPassed(t, d, db, bob, "app", again, "second main build")
	if log := btLog(t, d, bob, again, false); !strings.Contains(log, "tool=trusted") {
		t.Errorf("main's next build found what the feature branch planted:\n%s", log)
	}
}

// treeSum is a digest of every path, mode and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
