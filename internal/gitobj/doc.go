// Package gitobj reads the objects of a bare git repository in-process with
// a memory bound that holds whatever was pushed.
//
// Whoever may push chooses the objects: a 4.5 MB push can hold a 1 GiB blob
// of zeros, a commit or tree of any size, or a small file stored as a delta
// against a huge one. go-git, which Slipway used to read objects, inflates a
// packed object whole to learn even its size, and materialises a delta's
// base whole to apply it; so a pipeline file or a small checkout could make
// the daemon hold gigabytes. This package reads an object's size from its
// header only (a loose object's first bytes, a pack entry's header, the
// first bytes of a delta), checks it and the size of everything needed to
// rebuild it (delta data, delta bases, at most [MaxDepth] deltas deep)
// against the per-object cap before inflating anything, and then rebuilds
// it holding at most three buffers of that cap (base, delta, result).
// A [Pool] lets a fixed number of reads hold their buffers at once, so
// the object data the process holds is bounded by [Pool.Bound] whatever
// the repositories contain.
//
// What the package cannot read within those bounds it reports as
// [ErrNotInProcess] (or [*TooLargeError] for an object over the cap),
// never by reading more: the callers then let git read the repository in a
// child process, which streams large blobs and knows every repository
// layout (alternates, SHA-256, old index formats). The package itself only
// reads SHA-1 repositories' loose objects and version 2 pack indexes, which
// is what git writes for a pushed repository.
package gitobj
