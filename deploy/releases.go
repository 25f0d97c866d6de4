package deploy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"slipway/internal/shell"
	"strings"
	"time"
)

// Files Slipway writes into each release. The marker is written last: a
// release folder without it is partial, never linked to, removed next time.
const (
	markerFile    = ".slipway-release"
	activateFile  = ".slipway-activate" // the activate command that went live with this release
	partialSuffix = ".partial"
)

// Release is one folder under <path>/releases on a target.
type Release struct {
	ID       string
	Live     bool      // `current` points at it
	Complete bool      // has its completion marker; partial releases are never made live
	Commit   string    // from the marker
	Repo     string    // from the marker
	Env      string    // from the marker
	Time     time.Time // when the release was completed, from the marker
	Digest   string    // the artifact set it holds, from the marker; "" for releases from before digests

	// From Slipway's records, filled in by Service.Releases: the newest
	// deployment that shipped this release and its build. 0 when none is
	// recorded (the records were pruned or the release is not Slipway's).
	Deployment, Build int64
}

// state is what a target holds, as reported by inspectScript.
type state struct {
	live     string    // release id that current points at; "" when none
	liveLink string    // raw link text of current, for messages
	releases []Release // complete and partial, ordered newest first
	removed  []string  // stale partial releases removed while inspecting
}

func (st state) find(id string) (Release, bool) {
	for _, r := range st.releases {
		if r.ID == id {
			return r, true
		}
	}
	return Release{}, false
}

// inspectScript reports the target's releases on stdout, one fact a line.
// With clean, it also creates the folders and removes partial releases
// except keepPartial (which a retry of the same release resumes into).
func inspectScript(root string, clean bool, keepPartial string) string {
	c := "0"
	if clean {
		c = "1"
	}
	return `root=` + shell.Quote(root) + `
ours=` + shell.Quote(keepPartial) + `
clean=` + c + `
if [ "$clean" = 1 ]; then mkdir -p "$root/releases"; fi
if [ -d "$root" ]; then
cd "$root"
live=
if [ -L current ]; then live=$(readlink current); fi
printf 'live %s\n' "$live"
for d in releases/*; do
	[ -d "$d" ] || continue
	[ -L "$d" ] && continue
	n=${d#releases/}
	case "$n" in
	*` + partialSuffix + `) ;;
	*)
		if [ -f "$d/` + markerFile + `" ]; then
			printf 'release %s\n' "$n"
			while IFS= read -r l || [ -n "$l" ]; do printf 'marker %s\n' "$l"; done < "$d/` + markerFile + `"
			continue
		fi
		;;
	esac
	if [ "$clean" = 1 ] && [ "$n" != "$ours" ] && [ "releases/$n" != "$live" ]; then
		rm -rf -- "$d"
		printf 'removed %s\n' "$n"
	else
		printf 'partial %s\n' "$n"
	fi
done
fi
`
}

// parseState reads inspectScript's report. Lines it does not know (a chatty
// login shell on the target) are skipped; release names that could not have
// been written by Slipway are ignored, so nothing we later build into a
// command comes unchecked from the target.
func parseState(out []byte) (state, error) {
	var st state
	var cur *Release
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		kind, rest, _ := strings.Cut(sc.Text(), " ")
		switch kind {
		case "live":
			st.liveLink = rest
			if id, ok := strings.CutPrefix(rest, "releases/"); ok && checkReleaseID(id) == nil {
				st.live = id
			}
		case "release":
			cur = nil
			if checkReleaseID(rest) != nil {
				continue
			}
			st.releases = append(st.releases, Release{ID: rest, Complete: true})
			cur = &st.releases[len(st.releases)-1]
		case "marker":
			if cur == nil {
				continue
			}
			k, v, _ := strings.Cut(rest, "=")
			switch k {
			case "commit":
				cur.Commit = v
			case "repo":
				cur.Repo = v
			case "env":
				cur.Env = v
			case "time":
				if tm, err := time.Parse(time.RFC3339Nano, v); err == nil {
					cur.Time = tm
				}
			case "digest":
				cur.Digest = v
			}
		case "partial", "removed":
			cur = nil
			name := strings.TrimSuffix(rest, partialSuffix)
			if checkReleaseID(name) != nil {
				continue
			}
			if kind == "removed" {
				st.removed = append(st.removed, rest)
				continue
			}
			st.releases = append(st.releases, Release{ID: rest})
		default:
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return state{}, fmt.Errorf("read target state: %w", err)
	}
	for i := range st.releases {
		st.releases[i].Live = st.releases[i].Complete && st.releases[i].ID == st.live
	}
	if st.live != "" {
		if r, ok := st.find(st.live); !ok || !r.Complete {
			// current points at something that is not a complete release:
			// treat as no live release for linking, but keep the link text.
			st.live = ""
		}
	}
	slices.SortStableFunc(st.releases, func(a, b Release) int {
		if a.Complete != b.Complete {
			if a.Complete {
				return -1
			}
			return 1
		}
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return st, nil
}

// Releases reports what is on the target, newest first, and which release
// is live. It changes nothing on the target. A target folder that does not
// exist yet has no releases.
func (s *Shipper) Releases(ctx context.Context, t Target) ([]Release, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("list releases: %w", err)
	}
	sess, out, err := s.open(ctx, t, io.Discard, inspectScript(t.root(), false, ""))
	if err != nil {
		return nil, fmt.Errorf("list releases on %s: %w", t, err)
	}
	if err := sess.close(); err != nil {
		s.logger().Warn("closing connection", "target", t.String(), "err", err)
	}
	st, err := parseState(out)
	if err != nil {
		return nil, err
	}
	return st.releases, nil
}
