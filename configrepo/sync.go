package configrepo

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"slipway/configs"
)

// Sync makes main hold data, the configuration file the daemon runs on,
// unless it holds exactly that already: a commit by "Slipway
// <slipway@HOST>", its message subject why ("configuration on disk at
// start"), with main's other files kept and main's commit (if any) as its
// parent. It is made with git's plumbing (hash-object, mktree,
// commit-tree, then update-ref with main's old value, so that it never
// overwrites a push that landed meanwhile) with the repository's hooks
// active: the update is recorded like any other made on the server's disk.
// It returns the commit made, or "" when main held data already.
func (r *Repo) Sync(ctx context.Context, data []byte, why string) (string, error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	head, err := r.head(ctx)
	if err != nil {
		return "", err
	}
	blob, err := r.git(ctx, nil, data, "hash-object", "-w", "--stdin")
	if err != nil {
		return "", fmt.Errorf("store the configuration in %s: %w", configs.ConfigRepoName, err)
	}
	file := entry{mode: "100644", kind: "blob", id: strings.TrimSpace(string(blob)), name: configs.ConfigFile}
	var es []entry
	if head != "" {
		out, err := r.git(ctx, nil, nil, "ls-tree", "-z", head)
		if err != nil {
			return "", fmt.Errorf("list %s of %s: %w", configs.ConfigBranch, configs.ConfigRepoName, err)
		}
		if es, err = parseTree(out, false); err != nil {
			return "", err
		}
	}
	found := false
	for i, e := range es {
		if e.name != configs.ConfigFile {
			continue
		}
		if e.mode == file.mode && e.id == file.id {
			return "", nil // main holds the file already
		}
		es[i], found = file, true
	}
	if !found {
		es = append(es, file)
	}
	var tree bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&tree, "%s %s %s\t%s\x00", e.mode, e.kind, e.id, e.name)
	}
	treeID, err := r.git(ctx, nil, tree.Bytes(), "mktree", "-z")
	if err != nil {
		return "", fmt.Errorf("make the tree of %s: %w", configs.ConfigRepoName, err)
	}
	args := []string{"commit-tree", strings.TrimSpace(string(treeID)), "-m", why, "-m", r.body()}
	if head != "" {
		args = append(args, "-p", head)
	}
	who := "slipway@" + r.o.Host
	out, err := r.git(ctx, []string{"GIT_AUTHOR_NAME=Slipway", "GIT_AUTHOR_EMAIL=" + who,
		"GIT_COMMITTER_NAME=Slipway", "GIT_COMMITTER_EMAIL=" + who}, nil, args...)
	if err != nil {
		return "", fmt.Errorf("commit the configuration to %s: %w", configs.ConfigRepoName, err)
	}
	commit := strings.TrimSpace(string(out))
	// The old value "" means main must not exist yet.
	if _, err := r.git(ctx, nil, nil, "update-ref", "-m", "slipway: "+why, mainRef, commit, head); err != nil {
		return "", fmt.Errorf("move %s of %s to the configuration on disk: %w", configs.ConfigBranch, configs.ConfigRepoName, err)
	}
	r.log.Info("committed the configuration on disk", "repo", configs.ConfigRepoName, "commit", commit, "why", why)
	return commit, nil
}

// body is the message of Sync's commits under the subject.
func (r *Repo) body() string {
	return fmt.Sprintf("Slipway runs on %s, and %s did not hold it: the file on disk is the\n"+
		"source at start (a daemon that will not start is fixed by editing it),\n"+
		"and this repository shows the configuration in force.", r.o.File, configs.ConfigBranch)
}
