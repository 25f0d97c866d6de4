// Package sandbox runs one build step, `sh -c <command>`, isolated from the
// host.
//
// The build worker holds a Runner and calls Run once per step with a Spec:
// the workspace (mounted at /workspace, the working folder), an optional
// per-repo cache (at /cache), the complete environment, the network switch,
// a wall-clock timeout and resource limits. Bwrap is the real runner: it
// starts bubblewrap with fresh user, mount, PID, IPC, UTS, cgroup and
// (unless Network is set) network namespaces, read-only system folders, a
// chosen few files of /etc, a fresh tmpfs /tmp, and nothing else of the
// host, so the data dir (host key, database, other repos and caches) does
// not exist inside. None runs the step as a plain process for servers that
// explicitly allow sandbox = "none". A Kubernetes backend would be another
// Runner.
//
// Limits: rlimits on processes, file size and open files are set inside the
// sandbox with prlimit(1), after the user namespace exists, so the process
// count is that of the step alone. The kernel never applies RLIMIT_NPROC to
// host root, so when the daemon runs as root, Bwrap.UID must name an
// unprivileged uid for the process limit to hold; Result.Unenforced lists
// every requested limit that is not in force. The memory limit needs a
// delegated cgroup v2 and is not implemented yet: it is always reported in
// Unenforced.
package sandbox
