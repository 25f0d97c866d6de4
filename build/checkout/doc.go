// Package checkout writes the tree of one commit of a bare repository into
// an empty folder, the fresh workspace of a build.
//
// The build worker calls Checkout once per build, before the first step runs
// in the sandbox. The bare repository is only read: git is pointed at a
// throwaway index file outside the repository and outside the workspace, so
// no index, worktree metadata or config change is ever left in the bare
// repository, and several builds of the same repository can check out at the
// same time. Executable bits and symbolic links are kept; submodules are not
// fetched (their folders stay empty) and are reported in Result so the build
// log can say so. git itself refuses to write through a symbolic link, so a
// hostile tree cannot make Checkout write outside the workspace. The size
// of every file is read from its object's header before the first file is
// written, and a file over [Options.MaxFileBytes] fails the checkout
// ([*FileSizeError]); small trees of small files are written in-process
// with a bounded memory (package internal/gitobj), everything else by git,
// which streams large files.
//
// The method was chosen by measurement against the other candidates (a Go
// reader of `git archive`, a go-git tree walk); see checkout_bench_test.go and
// the README of the build packages for the figures.
package checkout
