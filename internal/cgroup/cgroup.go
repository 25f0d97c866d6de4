package cgroup

import (
	"os"
	"strings"
)

// Self returns the calling process's cgroup v2 path ("" when it is in no
// v2 hierarchy) and its path in the v1 memory hierarchy ("" when there is
// none), as /proc/self/cgroup lists them.
func Self() (v2, v1Memory string, err error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", "", err
	}
	v2, v1Memory = Parse(string(b))
	return v2, v1Memory, nil
}

// Parse reads a /proc/PID/cgroup file: lines of
// "hierarchy-id:controllers:path", where the v2 hierarchy is "0::path".
func Parse(file string) (v2, v1Memory string) {
	for line := range strings.Lines(file) {
		parts := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case HasController(parts[1], "memory"):
			v1Memory = parts[2]
		}
	}
	return v2, v1Memory
}

// HasController reports whether name is one of list, controllers
// separated by commas.
func HasController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
