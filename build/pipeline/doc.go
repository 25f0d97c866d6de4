// Package pipeline reads a repository's pipeline file, .slipway.toml, and
// checks it before anything runs.
//
// The file is read straight from a commit of the bare repository ([Load]);
// no checkout is needed, so a push can be judged before a workspace
// exists. Whoever may push chooses the objects read, so each one's size is
// learnt from its header before any of it is read (package
// internal/gitobj, or git ls-tree -l in [LoadGit]): a file over
// [MaxFileSize] is refused with its size ([*SizeError]) without being read. Each top-level table of the file is a section ([build], [nightly],
// ...) that describes one pipeline: the steps to run with sh -c, a timeout,
// the artifacts to keep, extra environment variables and whether the sandbox
// gets the network and the per-repo cache. Pushes build the "build" section;
// schedules name their own section and fall back to "build" ([File.Section]).
//
// Every problem in the file is reported as an [*Error] that names the file,
// line and column, the way compilers do (".slipway.toml:3:7: ..."), so that the
// build log can show the pusher exactly what to fix. A file that parses is
// guaranteed to satisfy the invariants documented on [Pipeline]; the worker
// does not need to check them again.
package pipeline
