// Package cgroup reads where the calling process sits among the control
// groups (/proc/self/cgroup): its cgroup v2 path and its path in the v1
// memory hierarchy. The sandbox makes its steps' memory cgroups under
// them (sandbox.DetectCgroups), and configs reads the daemon's own memory
// limit there to size the default build memory; neither imports the
// other.
package cgroup
