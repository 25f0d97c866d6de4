package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// rsUsers and rsRepos are the size of the configuration the reload speed
// target is set for (issue 13).
const (
	rsUsers = 1000
	rsRepos = 1000
)

// rsConfig is a configuration of rsUsers users (u0, u1, ...; each with a
// key of its own, admin among them) and rsRepos repositories (team0/r0,
// ...; r<i> written by u<i>), plus "hot", the repository the test pushes
// to and clones. It returns the private key file of u<rsUsers-1>.
func rsConfig(t testing.TB, admin *user, extra string) (string, *user) {
	t.Helper()
	var b strings.Builder
	b.WriteString("data_dir = \"%DATA%\"\n[ssh]\nlisten = \"127.0.0.1:0\"\n\n")
	fmt.Fprintf(&b, "[[user]]\nname = %q\nkeys = [%q]\nadmin = true\n\n", admin.name, admin.pub)
	last := &user{name: fmt.Sprintf("u%d", rsUsers-1), sshHome: t.TempDir()}
	for i := range rsUsers {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		sshPub, err := gossh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub)))
		fmt.Fprintf(&b, "[[user]]\nname = \"u%d\"\nkeys = [%q]\n\n", i, line)
		if i == rsUsers-1 {
			block, err := gossh.MarshalPrivateKey(priv, last.name)
			if err != nil {
				t.Fatal(err)
			}
			last.key, last.pub = filepath.Join(last.sshHome, "id_ed25519"), line
			if err := os.WriteFile(last.key, pem.EncodeToMemory(block), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range rsRepos {
		fmt.Fprintf(&b, "[[repo]]\nname = \"team%d/r%d\"\nwrite = [\"u%d\"]\nread = [\"*\"]\n\n", i%10, i, i)
	}
	b.WriteString(extra)
	return b.String(), last
}

// rsFigures are what one measurement saw.
type rsFigures struct {
	reloads        []time.Duration // as each reload reported it
	before, during []time.Duration // a push and a clone each, without and during reloads
}

var rsTookRE = regexp.MustCompile(`in force \(.*, in ([0-9.]+[µm]?s)\)`)

// rsMeasure starts a daemon on the large configuration and times rounds
// of a push and a clone of a small repository in pairs: one alone, then
// one while an admin reloads the configuration (started with it). Pairs
// cancel out the load the rest of the machine puts on both. It checks
// that nothing failed and that the configuration applied: a user who
// exists only in the reloaded file can push.
func rsMeasure(t testing.TB, rounds int) rsFigures {
	t.Helper()
	bin, err := releaseBin()
	if err != nil {
		t.Fatal(err)
	}
	admin := newUser(t, "admin")
	hot := "[[repo]]\nname = \"hot\"\nwrite = [\"admin\"]\n"
	config, _ := rsConfig(t, admin, hot)
	d := startDaemonBin(t, bin, config)
	src := admin.newProject(t, map[string]string{"README": "hot\n"})
	admin.mustGit(t, src, "remote", "add", "slipway", d.url("hot"))
	n := 0
	op := func() (time.Duration, error) {
		n++
		admin.commit(t, src, "README", fmt.Sprintf("change %d\n", n))
		dir := filepath.Join(t.TempDir(), "clone")
		start := time.Now()
		if out, err := admin.git(src, "push", "-q", "slipway", "HEAD:main"); err != nil {
			return 0, fmt.Errorf("push: %v\n%s", err, out)
		}
		if out, err := admin.git("", "clone", "-q", d.url("hot"), dir); err != nil {
			return 0, fmt.Errorf("clone: %v\n%s", err, out)
		}
		return time.Since(start), nil
	}
	reload := func() (time.Duration, error) {
		out, stderr, code := d.ssh(admin, "reload")
		m := rsTookRE.FindStringSubmatch(out)
		if code != 0 || m == nil {
			return 0, fmt.Errorf("reload: exit %d\n%s%s", code, out, stderr)
		}
		return time.ParseDuration(m[1])
	}

	// The reloaded file has one more repository, for the last user, who
	// pushes to it once it applies.
	next, newcomer := rsConfig(t, admin, hot+"\n[[repo]]\nname = \"late\"\nwrite = [\"u"+fmt.Sprint(rsUsers-1)+"\"]\n")
	rtWrite(t, d, next)
	var f rsFigures
	for range rounds {
		took, err := op()
		if err != nil {
			t.Fatalf("without a reload: %v", err)
		}
		f.before = append(f.before, took)
		var wg sync.WaitGroup
		var reloaded time.Duration
		var reloadErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			reloaded, reloadErr = reload()
		}()
		took, err = op()
		wg.Wait()
		if err != nil {
			t.Fatalf("during a reload: %v", err)
		}
		if reloadErr != nil {
			t.Fatal(reloadErr)
		}
		f.during = append(f.during, took)
		f.reloads = append(f.reloads, reloaded)
	}
	late := newcomer.newProject(t, map[string]string{"README": "late\n"})
	if out, err := newcomer.git(late, "push", d.url("late"), "HEAD:main"); err != nil {
		t.Fatalf("the user of the reloaded file cannot push: %v\n%s", err, out)
	}
	return f
}

// TestReloadOfAThousandUsersAndRepos: while an admin reloads a
// configuration of 1,000 users and 1,000 repositories, pushes and clones
// go on and none fails, and the reloaded file is in force afterwards.
// The speed target (200 ms a reload, pushes and clones no more than 50 ms
// slower during one) is BenchmarkReloadAtScale's, to be run on a machine
// under no other load: on a shared one a timing bound is a flaky test.
// Here a reload must cost no more than a few pushes do on the same machine
// at the same time: its median under three times a push and a clone's
// (a bound that holds whatever the load, which the reload's low CPU
// priority lengthens under contention: a CI run at load 20 saw 2.6 s
// against 1.7 s for a push and a clone).
func TestReloadOfAThousandUsersAndRepos(t *testing.T) {
	t.Parallel()
	f := rsMeasure(t, 6)
	took, before, during := median(f.reloads), median(f.before), median(f.during)
	t.Logf("%d reloads: median %v, max %v; push+clone median %v alone, %v during a reload",
		len(f.reloads), took, slices.Max(f.reloads), before, during)
	if took > 3*before {
		t.Errorf("reloading 1,000 users and 1,000 repositories took %v (median), more than three times a push and a clone (%v)", took, before)
	}
}

// BenchmarkReloadAtScale measures issue 13's speed target on the release
// build and fails over it: a reload of 1,000 users and 1,000 repositories
// in at most 200 ms (median), and a push with a clone at most 50 ms
// slower (median) while one runs than alone, in pairs.
//
//	go test -run '^$' -bench ReloadAtScale -benchtime 1x ./e2e
func BenchmarkReloadAtScale(b *testing.B) {
	for range b.N {
		f := rsMeasure(b, 20)
		took, before, during := median(f.reloads), median(f.before), median(f.during)
		b.ReportMetric(float64(took.Microseconds())/1000, "reload-ms")
		b.ReportMetric(float64(before.Microseconds())/1000, "op-alone-ms")
		b.ReportMetric(float64(during.Microseconds())/1000, "op-during-reload-ms")
		b.Logf("%d reloads: median %v, max %v; push+clone median %v alone, %v during a reload (+%v)",
			len(f.reloads), took, slices.Max(f.reloads), before, during, during-before)
		if took > 200*time.Millisecond {
			b.Errorf("reload took %v (median), more than 200 ms", took)
		}
		if during-before > 50*time.Millisecond {
			b.Errorf("a push and a clone took %v (median) during reloads, %v alone: more than 50 ms longer", during, before)
		}
	}
}
