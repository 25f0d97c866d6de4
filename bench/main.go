package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	runs := flag.Int("runs", 10, "timed runs of each measurement per server")
	baseline := flag.String("baseline", "bench/openssh-baseline.sh", "the OpenSSH baseline script (a copy of ../shared/bench/openssh-baseline.sh)")
	keep := flag.Bool("keep", false, "keep the working directory")
	flag.Parse()
	if err := run(*runs, *baseline, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// server is one git host under test.
type server struct {
	name   string
	urlFor func(repo string) string
	create func(repo string) error // make an empty bare repository
}

func run(runs int, baselineScript string, keep bool) error {
	script, err := filepath.Abs(baselineScript)
	if err != nil {
		return err
	}
	if _, err := os.Stat(script); err != nil {
		return fmt.Errorf("baseline script: %w", err)
	}
	work, err := os.MkdirTemp("", "slipway-bench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	// The baseline's git-shell user must reach the repos folder.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}

	// OpenSSH + git-shell.
	baseDir := filepath.Join(work, "openssh")
	baseURL, port, err := startBaseline(script, baseDir)
	if err != nil {
		return err
	}
	defer exec.Command(script, "stop", baseDir).Run()
	key := filepath.Join(baseDir, "etc", "client_key")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	fmt.Printf("openssh baseline on port %d\n", port)

	// Slipway, built without the race detector, on the same client key.
	bin := filepath.Join(work, "slipway")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/slipway").CombinedOutput(); err != nil {
		return fmt.Errorf("build slipway: %v\n%s", err, out)
	}
	slip, err := startSlipway(bin, filepath.Join(work, "slipway-root"), strings.TrimSpace(string(pub)))
	if err != nil {
		return err
	}
	defer slip.stop()
	fmt.Printf("slipway on %s (pid %d)\n", slip.addr, slip.cmd.Process.Pid)

	env := append(os.Environ(),
		"GIT_SSH_COMMAND=ssh -i "+key+" -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.invalid",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.invalid")
	g := &gitRunner{env: env}

	servers := []server{
		{
			name:   "slipway",
			urlFor: func(repo string) string { return "ssh://git@" + slip.addr + "/" + repo + ".git" },
			create: func(string) error { return nil }, // admins create repos by pushing
		},
		{
			name:   "openssh",
			urlFor: func(repo string) string { return baseURL + "/" + repo + ".git" },
			create: func(repo string) error {
				dir := filepath.Join(baseDir, "repos", repo+".git")
				if err := g.run("", "init", "-q", "--bare", dir); err != nil {
					return err
				}
				return exec.Command("chown", "-R", "gitbench", dir).Run()
			},
		},
	}

	src := filepath.Join(work, "src")
	if err := makeSource(g, src); err != nil {
		return err
	}
	results := []result{}

	// 1. Push of one small commit to an existing repository.
	small := measure("push one small commit", 0.5, runs, servers, func(s server, i int) (time.Duration, error) {
		if i == 0 {
			if err := s.create("small"); err != nil {
				return 0, err
			}
			if err := g.run(src, "push", "-q", s.urlFor("small"), "main"); err != nil {
				return 0, err
			}
		}
		if err := g.commitFile(src, "counter", strconv.Itoa(i)+s.name); err != nil {
			return 0, err
		}
		start := time.Now()
		err := g.run(src, "push", "-q", s.urlFor("small"), "main")
		return time.Since(start), err
	})
	results = append(results, small)

	// 2. Clone of a repository with at least 10,000 objects.
	large := filepath.Join(work, "large")
	nobj, err := makeLarge(g, large)
	if err != nil {
		return err
	}
	for _, s := range servers {
		if err := s.create("large"); err != nil {
			return err
		}
		if err := g.run(large, "push", "-q", s.urlFor("large"), "main"); err != nil {
			return err
		}
	}
	results = append(results, measure(fmt.Sprintf("clone (%d objects)", nobj), 0.9, runs, servers, func(s server, i int) (time.Duration, error) {
		dst := filepath.Join(work, "clones", s.name+strconv.Itoa(i))
		start := time.Now()
		err := g.run("", "clone", "-q", "--bare", s.urlFor("large"), dst)
		d := time.Since(start)
		os.RemoveAll(dst)
		return d, err
	}))

	// 3. Mirror push of 1,000+ refs into an empty repository.
	mirror := filepath.Join(work, "mirror")
	if err := makeMirror(g, src, mirror, 1200); err != nil {
		return err
	}
	results = append(results, measure("push --mirror (1,201 refs) into an empty repo", 1.2, runs, servers, func(s server, i int) (time.Duration, error) {
		repo := "mirror" + strconv.Itoa(i)
		if err := s.create(repo); err != nil {
			return 0, err
		}
		start := time.Now()
		err := g.run(mirror, "push", "-q", "--mirror", s.urlFor(repo))
		return time.Since(start), err
	}))

	// 4. Idle resident memory of the daemon, after the work above settled.
	time.Sleep(2 * time.Second) // let the runtime return freed memory; this is a measurement, not a sync
	rss, err := residentKB(slip.cmd.Process.Pid)
	if err != nil {
		return err
	}

	fmt.Println()
	fmt.Printf("%-48s %12s %12s %8s %8s\n", "measurement (median of "+strconv.Itoa(runs)+")", "slipway", "openssh", "ratio", "target")
	for _, r := range results {
		verdict := "ok"
		if r.ratio() > r.target {
			verdict = "MISSED"
		}
		fmt.Printf("%-48s %12s %12s %7.2fx %7.2fx %s\n", r.name, r.med[0].Round(100*time.Microsecond), r.med[1].Round(100*time.Microsecond), r.ratio(), r.target, verdict)
	}
	verdict := "ok"
	if rss > 30*1024 {
		verdict = "MISSED"
	}
	fmt.Printf("%-48s %9.1f MB %12s %8s %7s MB %s\n", "idle daemon resident memory", float64(rss)/1024, "", "", "30", verdict)
	return nil
}

type result struct {
	name   string
	target float64
	med    [2]time.Duration
}

func (r result) ratio() float64 { return float64(r.med[0]) / float64(r.med[1]) }

// measure runs f runs+1 times per server, interleaving the servers so that
// drift of the machine touches both alike; the first run of each is a
// warm-up and is not counted.
func measure(name string, target float64, runs int, servers []server, f func(s server, i int) (time.Duration, error)) result {
	times := make([][]time.Duration, len(servers))
	for i := 0; i <= runs; i++ {
		for j, s := range servers {
			d, err := f(s, i)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s on %s, run %d: %v\n", name, s.name, i, err)
				os.Exit(1)
			}
			if i > 0 {
				times[j] = append(times[j], d)
			}
		}
	}
	r := result{name: name, target: target}
	for j := range servers {
		r.med[j] = median(times[j])
	}
	fmt.Printf("%-48s slipway %v  openssh %v\n", name, r.med[0], r.med[1])
	return r
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startBaseline starts the OpenSSH baseline on the first free port of a
// small range (sshd cannot be given port 0 and report it).
func startBaseline(script, dir string) (string, int, error) {
	var lastErr error
	for port := 22201; port < 22231; port++ {
		out, err := exec.Command(script, "start", dir, strconv.Itoa(port)).CombinedOutput()
		if err != nil {
			lastErr = fmt.Errorf("%v: %s", err, out)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return lines[len(lines)-1], port, nil
	}
	return "", 0, fmt.Errorf("start openssh baseline: %w", lastErr)
}

type slipwayProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func startSlipway(bin, root, pub string) (*slipwayProc, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("data_dir = %q\n[ssh]\nlisten = \"127.0.0.1:0\"\n[[user]]\nname = \"bench\"\nkeys = [%q]\nadmin = true\n",
		filepath.Join(root, "data"), pub)
	path := filepath.Join(root, "slipway.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", "--config", path)
	cmd.Stderr = io.Discard
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &slipwayProc{cmd: cmd, done: make(chan struct{})}
	addr := make(chan string, 1)
	re := regexp.MustCompile(`listening on ssh://(\S+)`)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		cmd.Wait()
		close(p.done)
	}()
	select {
	case p.addr = <-addr:
		return p, nil
	case <-p.done:
		return nil, errors.New("slipway serve exited at start")
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("slipway serve did not start")
	}
}

func (p *slipwayProc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
	}
}

type gitRunner struct{ env []string }

func (g *gitRunner) run(dir string, args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = g.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (g *gitRunner) commitFile(dir, name, body string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		return err
	}
	if err := g.run(dir, "add", name); err != nil {
		return err
	}
	return g.run(dir, "commit", "-q", "-m", "bench "+body)
}

func makeSource(g *gitRunner, dir string) error {
	if err := g.run("", "init", "-q", "-b", "main", dir); err != nil {
		return err
	}
	return g.commitFile(dir, "README", "bench\n")
}

// makeLarge writes a repository of 120 commits over 1,200 files in 40
// folders with git fast-import, and returns its object count.
func makeLarge(g *gitRunner, dir string) (int, error) {
	if err := g.run("", "init", "-q", "-b", "main", dir); err != nil {
		return 0, err
	}
	var b strings.Builder
	mark := 0
	for c := range 120 {
		fmt.Fprintf(&b, "commit refs/heads/main\ncommitter bench <bench@example.invalid> %d +0000\n", 1700000000+c)
		msg := fmt.Sprintf("commit %d", c)
		fmt.Fprintf(&b, "data %d\n%s\n", len(msg), msg)
		// Later commits continue from the branch's tip in this stream.
		for f := range 1200 {
			if c > 0 && (f+c)%12 != 0 {
				continue // each later commit changes a tenth of the files
			}
			mark++
			body := fmt.Sprintf("package p%d\n\n// file %d, revision %d\nvar V%d = %d\n%s", f%40, f, c, f, c*f, strings.Repeat("// padding line\n", f%50))
			fmt.Fprintf(&b, "M 100644 inline dir%02d/sub%d/file%04d.go\ndata %d\n%s\n", f%40, f%3, f, len(body), body)
		}
	}
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = dir
	cmd.Env = g.env
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("fast-import: %v\n%s", err, out)
	}
	if err := g.run(dir, "repack", "-adq"); err != nil {
		return 0, err
	}
	cmd = exec.Command("git", "rev-list", "--all", "--objects")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return 0, err
	}
	return strings.Count(string(out), "\n"), nil
}

// makeMirror clones src and gives the clone n more refs.
func makeMirror(g *gitRunner, src, dir string, n int) error {
	if err := g.run("", "clone", "-q", "--bare", src, dir); err != nil {
		return err
	}
	var b strings.Builder
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = dir
	head, err := cmd.Output()
	if err != nil {
		return err
	}
	for i := range n {
		kind := "heads/feature-"
		if i%4 == 0 {
			kind = "tags/v1."
		}
		fmt.Fprintf(&b, "create refs/%s%d %s\n", kind, i, strings.TrimSpace(string(head)))
	}
	upd := exec.Command("git", "update-ref", "--stdin")
	upd.Dir = dir
	upd.Stdin = strings.NewReader(b.String())
	if out, err := upd.CombinedOutput(); err != nil {
		return fmt.Errorf("update-ref: %v\n%s", err, out)
	}
	return nil
}

// residentKB reads VmRSS of a process.
func residentKB(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, errors.New("no VmRSS")
}
