// Package sandbox runs one build step, `sh -c <command>`, isolated from the
// host.
//
// Local is the executor.Executor of this host: the build worker hands it a
// whole job, and it runs the steps one by one through a Runner, stops at
// the first failure and copies the artifacts. A Runner's Run runs one step
// with a Spec:
// the workspace (the working folder), an optional per-repo cache, an
// optional per-build home folder, the complete environment, the network
// switch, a wall-clock timeout and resource limits. Where those folders
// appear to the step differs between runners; Runner.Layout says, and the
// caller builds HOME, TMPDIR and cache variables from it.
//
// Bwrap is the real runner: it starts bubblewrap with fresh user, mount,
// PID, IPC, UTS, cgroup and (unless Network is set) network namespaces,
// read-only system folders, a chosen few files of /etc, a fresh tmpfs /tmp,
// the workspace at /workspace, the cache at /cache, the home at /home/build,
// and nothing else of the host, so the data dir (host key, database, other
// repos and caches) does not exist inside. A step without network has only
// its own loopback, and a resolv.conf that points there, so that name
// lookups and connections fail at once rather than after a resolver's
// timeouts. None runs the step as a plain process for servers that
// explicitly allow sandbox = "none"; its layout is the host folders
// themselves, with a temporary folder inside the home, never the host's
// shared /tmp. A Kubernetes backend would be another executor.Executor,
// not a Runner.
//
// At start, the daemon prepares the sandbox's /etc (PrepareEtcSkipped, which
// leaves out what the daemon's user may not read) and runs Bwrap.SelfTest:
// a trivial step run exactly as builds run, whose findings (namespaces,
// network, limits, memory cgroup) it prints, and whose *SetupError says in
// one line what the host lacks and how to fix it.
//
// Limits: rlimits on processes, file size and open files are set inside the
// sandbox with prlimit(1), after the user namespace exists, so the process
// count is that of the step alone. The kernel never applies RLIMIT_NPROC to
// host root, so when the daemon runs as root, Bwrap.UID must name an
// unprivileged uid for the process limit to hold. The memory limit needs a
// memory cgroup the daemon may create children in (DetectCgroups).
// Result.Unenforced lists every requested limit that is not in force.
package sandbox
