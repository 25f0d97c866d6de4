package configs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"slipway/internal/cgroup"
)

// hostMemory is the memory builds on this machine can share: the machine's
// (sysinfo), or the limit of the daemon's own memory cgroup when that is
// lower (a daemon in a container with 8 GiB must not hand each build
// three quarters of the host's 256). 0 when it cannot be read.
func hostMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 0
	}
	total := int64(si.Totalram) * int64(si.Unit)
	if lim := cgroupMemoryLimit(); lim > 0 && lim < total {
		return lim
	}
	return total
}

// cgroupMemoryLimit is the memory limit of the calling process's cgroup
// (v2 memory.max, or v1 memory.limit_in_bytes), or 0 when there is none.
// Limits of the cgroups above it are not read: a parent's limit is usually
// the same container's.
func cgroupMemoryLimit() int64 {
	v2, v1, err := cgroup.Self()
	if err != nil {
		return 0
	}
	var files []string
	if v2 != "" {
		files = append(files, filepath.Join("/sys/fs/cgroup", v2, "memory.max"),
			filepath.Join("/sys/fs/cgroup/unified", v2, "memory.max"))
	}
	if v1 != "" {
		files = append(files, filepath.Join("/sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"))
	}
	var least int64
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		// "max" (v2) or a huge number (v1) means no limit.
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 {
			continue
		}
		if least == 0 || n < least {
			least = n
		}
	}
	return least
}
