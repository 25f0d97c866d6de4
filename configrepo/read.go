package configrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"slipway/configs"
	"slipway/internal/gitrev"
)

// entry is one line of a tree, as `git ls-tree -l -z` prints it.
type entry struct {
	mode, kind, id string
	size           int64 // -1 for trees and submodules
	name           string
}

// parseTree reads `git ls-tree [-l] -z` output.
func parseTree(out []byte, long bool) ([]entry, error) {
	var es []entry
	for _, rec := range bytes.Split(out, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, name, ok := bytes.Cut(rec, []byte{'\t'})
		f := bytes.Fields(meta)
		if !ok || len(f) != 3 && !long || len(f) != 4 && long {
			return nil, fmt.Errorf("unexpected ls-tree line %q", rec)
		}
		e := entry{mode: string(f[0]), kind: string(f[1]), id: string(f[2]), size: -1, name: string(name)}
		if long && string(f[3]) != "-" {
			n, err := strconv.ParseInt(string(f[3]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("unexpected ls-tree size in %q", rec)
			}
			e.size = n
		}
		es = append(es, e)
	}
	return es, nil
}

// read returns the configuration file of commit id, reading objects from
// quarantine too when it is not "" (a push in progress). why, when not "",
// is the pusher's one line on why there is no file to read (missing, not
// a file, too large, not a commit); err is a failure of git.
func (r *Repo) read(ctx context.Context, id, quarantine string) (data []byte, why string, err error) {
	var env []string
	if quarantine != "" {
		env = []string{"GIT_OBJECT_DIRECTORY=" + quarantine, "GIT_ALTERNATE_OBJECT_DIRECTORIES=" + filepath.Join(r.o.GitDir, "objects")}
	}
	short := gitrev.Short(id)
	commit, err := gitrev.Peel(ctx, r.o.GitDir, id, env)
	if errors.Is(err, gitrev.ErrNotCommit) {
		return nil, fmt.Sprintf("%s is not a commit", short), nil
	}
	if err != nil {
		return nil, "", err
	}
	out, err := r.git(ctx, env, nil, "ls-tree", "-l", "-z", commit, configs.ConfigFile)
	if err != nil {
		return nil, "", fmt.Errorf("list %s at %s: %w", configs.ConfigFile, short, err)
	}
	es, err := parseTree(out, true)
	if err != nil {
		return nil, "", err
	}
	var e *entry
	for i := range es {
		if es[i].name == configs.ConfigFile {
			e = &es[i]
		}
	}
	switch {
	case e == nil:
		return nil, fmt.Sprintf("%s is missing at %s: this push would remove the configuration", configs.ConfigFile, short), nil
	case e.mode == "120000":
		return nil, fmt.Sprintf("%s at %s is a symbolic link; it must be the file itself", configs.ConfigFile, short), nil
	case e.kind != "blob":
		return nil, fmt.Sprintf("%s at %s is a %s, not a file: this push would remove the configuration", configs.ConfigFile, short, kindWord(e.kind)), nil
	case e.size > MaxFileBytes:
		return nil, fmt.Sprintf("%s at %s is %d bytes, over the limit of %d MiB", configs.ConfigFile, short, e.size, MaxFileBytes>>20), nil
	}
	data, err = r.git(ctx, env, nil, "cat-file", "blob", e.id)
	if err != nil {
		return nil, "", fmt.Errorf("read %s at %s: %w", configs.ConfigFile, short, err)
	}
	if int64(len(data)) != e.size {
		return nil, "", fmt.Errorf("read %s at %s: %d bytes, but its tree says %d", configs.ConfigFile, short, len(data), e.size)
	}
	return data, "", nil
}

func kindWord(kind string) string {
	switch kind {
	case "tree":
		return "folder"
	case "commit":
		return "submodule"
	}
	return kind
}
