package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"slipway/internal/cgroup"
)

// Cgroups makes one memory cgroup per step under a parent the daemon may
// write to: its own cgroup v2 when the host delegates it with the memory
// controller enabled for children, or else its cgroup in the v1 memory
// hierarchy. The zero value (and nil) means no memory limit can be held.
type Cgroups struct {
	parent string // folder the step cgroups are made in
	v2     bool
}

// DetectCgroups finds where memory limits can be set for steps, or says why
// none can.
func DetectCgroups() (*Cgroups, error) {
	v2Path, v1Path, err := cgroup.Self()
	if err != nil {
		return nil, fmt.Errorf("memory limits: %w", err)
	}
	var reasons []string
	for _, root := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if v2Path == "" {
			break
		}
		dir := filepath.Join(root, v2Path)
		ctl, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err != nil {
			continue
		}
		if !cgroup.HasController(strings.ReplaceAll(strings.TrimSpace(string(ctl)), " ", ","), "memory") {
			reasons = append(reasons, "cgroup v2 at "+dir+" does not delegate the memory controller")
			continue
		}
		if c, err := probe(dir, true); err == nil {
			return c, nil
		} else {
			reasons = append(reasons, err.Error())
		}
	}
	if v1Path != "" {
		dir := filepath.Join("/sys/fs/cgroup/memory", v1Path)
		if c, err := probe(dir, false); err == nil {
			return c, nil
		} else {
			reasons = append(reasons, err.Error())
		}
	}
	if len(reasons) == 0 {
		reasons = append(reasons, "no memory cgroup controller found")
	}
	return nil, fmt.Errorf("memory limits: %s", strings.Join(reasons, "; "))
}

// String says where step cgroups are made, for people.
func (c *Cgroups) String() string {
	if c.v2 {
		return "cgroup v2 under " + c.parent
	}
	return "cgroup v1 under " + c.parent
}

// probe checks that a step cgroup can be made under dir.
func probe(dir string, v2 bool) (*Cgroups, error) {
	c := &Cgroups{parent: dir, v2: v2}
	g, err := c.create(1 << 30)
	if err != nil {
		return nil, err
	}
	g.remove()
	return c, nil
}

// stepPrefix starts the name of every step cgroup; the pid of the process
// that made it follows.
const stepPrefix = "slipway-step-"

// Sweep removes the step cgroups that processes no longer running made: a
// daemon killed while a step ran cannot remove its cgroup. Its processes
// die with it, but for one: bubblewrap's sandbox child waits for its
// parent to map its ids before it asks to die with it, so a daemon killed
// in that moment leaves it blocked for ever (seen with bubblewrap 0.8.0).
// Such a process, in the cgroup of a daemon that is gone, is killed. Sweep
// returns how many cgroups it removed. Call it at start; cgroups of running
// processes, this one's included, are left alone.
func (c *Cgroups) Sweep() int {
	entries, err := os.ReadDir(c.parent)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), stepPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		g := &stepCgroup{dir: filepath.Join(c.parent, e.Name()), v2: c.v2}
		g.killAll()
		if g.tryRemove(5 * time.Second) {
			n++
		}
	}
	return n
}

// stepCgroup is the cgroup of one step.
type stepCgroup struct {
	dir string
	v2  bool
}

// create makes a cgroup with a memory limit of max bytes (swap included
// where the kernel accounts it, so that a step cannot swap its way around).
func (c *Cgroups) create(max int64) (*stepCgroup, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	// The daemon's pid in the name lets a later start remove what a
	// daemon killed mid-step left (Sweep).
	dir := filepath.Join(c.parent, fmt.Sprintf("%s%d-%s", stepPrefix, os.Getpid(), hex.EncodeToString(b[:])))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cgroup under %s: %w", c.parent, err)
	}
	g := &stepCgroup{dir: dir, v2: c.v2}
	limit := strconv.FormatInt(max, 10)
	var err error
	if c.v2 {
		err = g.write("memory.max", limit)
		if err == nil {
			// Best effort: absent where swap is not accounted.
			_ = g.write("memory.swap.max", "0")
		}
	} else {
		err = g.write("memory.limit_in_bytes", limit)
		if err == nil {
			_ = g.write("memory.memsw.limit_in_bytes", limit)
		}
	}
	if err != nil {
		g.remove()
		return nil, fmt.Errorf("set memory limit in %s: %w", dir, err)
	}
	return g, nil
}

func (g *stepCgroup) write(file, value string) error {
	return os.WriteFile(filepath.Join(g.dir, file), []byte(value), 0)
}

// add moves a process (and so, from then on, every process it starts) into
// the cgroup.
func (g *stepCgroup) add(pid int) error {
	return g.write("cgroup.procs", strconv.Itoa(pid))
}

// oomKilled reports whether the kernel killed a process of the cgroup for
// going over its limit.
func (g *stepCgroup) oomKilled() bool {
	file := "memory.oom_control" // v1: "oom_kill N"
	if g.v2 {
		file = "memory.events" // v2: "oom_kill N"
	}
	data, err := os.ReadFile(filepath.Join(g.dir, file))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
			v, _ := strconv.Atoi(strings.TrimSpace(n))
			return v > 0
		}
	}
	return false
}

// remove deletes the cgroup once its processes are gone (the kernel may
// take a moment to let go of the last one).
func (g *stepCgroup) remove() { g.tryRemove(5 * time.Second) }

// tryRemove deletes the cgroup, trying again for up to wait while
// processes leave it; it reports whether the cgroup is gone.
func (g *stepCgroup) tryRemove(wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	for {
		err := os.Remove(g.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killAll kills every process in the cgroup.
func (g *stepCgroup) killAll() {
	data, err := os.ReadFile(filepath.Join(g.dir, "cgroup.procs"))
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
