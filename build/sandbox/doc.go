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
// host root, so when the daemon runs as root, steps must run as an
// unprivileged uid for the process limit to hold. The memory limit needs a
// memory cgroup the daemon may create children in (DetectCgroups); tmpfs
// pages the step writes are charged to it too. Every tmpfs a step may
// write to is sized by Limits.Tmp (bubblewrap's --size, 0.8.0 on): /tmp,
// which is a link to /dev/shm (one tmpfs for temporary files and POSIX
// shared memory), and a home of the step's own; the root and /dev, which
// bubblewrap makes as tmpfs mounts it cannot size, are remounted read-only
// once everything is mounted in them. A step writing past /tmp gets
// ENOSPC, as on a full disk.
//
// The workspace limit (Limits.Workspace: the workspace and the home
// together, on disk) is held by accounting, by Local across a job's steps:
// a watch measures the folders' allocated blocks (hard links once, every
// entry at least 4 KiB so that empty files cannot use up the inodes) and
// stops the step that takes them over the limit. A filesystem per build
// would let the kernel refuse the write instead, but a sized tmpfs puts
// the workspace in memory, a loop-mounted image needs root, a loop device
// and mkfs per build, and project quotas a filesystem mounted for them;
// accounting works as root and as an ordinary user on any filesystem. Its
// price is a little disk past the limit before the step is stopped: the
// watch asks the filesystems (statfs) every 25 ms whether they grew by the
// room left and walks the tree again when they did, and otherwise walks
// every 100 ms, but at most once in twenty times a walk's duration; walks
// the filesystems' growth calls for come at most once in four. A step that
// ends between two walks is measured once more, and fails if it left the
// folders over the limit. A walk costs what `du -s` does
// (BenchmarkDiskUsage: 60-90 ms for 10,000 files on this 2-core machine
// under load, as du), so a watch takes at most a fifth of a core, and a
// twentieth when nothing grows. Measured here, with other tests running
// beside (TestWorkspaceLimitStopsTheStep): steps writing 1 MiB files, or
// one process writing at page-cache speed, were stopped 0.3-24.7 MiB past
// a 32 MiB limit, 3.3-3.8 MiB at the median.
//
// Result.Unenforced, and Runner.Unenforced before a step runs, list every
// requested limit that is not in force.
//
// Identities: with Local.IDs, every job runs as a host uid of its own from
// a range (IDPool), its workspace, home and cache handed to that uid and
// mode 0700, so that steps of another job, and other local accounts,
// cannot read them; jobs that share a cache (one ref's builds running at
// once) share its uid. CheckIDRange refuses a range that an account, a
// group or a subordinate id range of the machine uses.
package sandbox
