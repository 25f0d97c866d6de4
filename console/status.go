package console

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"slipway/gitserver"
	"slipway/internal/gitrev"
	"slipway/internal/sshcmd"
	"slipway/internal/termsafe"
	"slipway/views"
)

// The exit statuses of `status`, for scripts: of the last build of the
// revision, or, with every branch, the first of failed, running, none
// and passed that any branch has.
const (
	StatusPassed  = 0 // passed (or skipped: the commit has nothing to build)
	StatusFailed  = 1 // failed, error, cancelled or interrupted
	StatusNone    = 2 // no build (a superseded build never ran, so is none)
	StatusRunning = 3 // queued or running: ask again later
	StatusUnknown = 4 // no answer: bad usage, no such repository or revision
)

func statusCode(result string) int {
	switch result {
	case views.ResultPassed:
		return StatusPassed
	case views.ResultFailed:
		return StatusFailed
	case views.ResultRunning:
		return StatusRunning
	}
	return StatusNone
}

// worst is the exit status of several revisions: failed, then running,
// then none, then passed.
func worst(codes []int) int {
	rank := map[int]int{StatusFailed: 3, StatusRunning: 2, StatusNone: 1, StatusPassed: 0}
	out := StatusPassed
	for _, c := range codes {
		if rank[c] > rank[out] {
			out = c
		}
	}
	return out
}

func (c *console) status(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("status", args, stderr, false, false)
	if !ok || len(f.args) < 1 || len(f.args) > 2 {
		sshcmd.Fail(stderr, "usage: status REPO [REV] [--json]")
		return StatusUnknown
	}
	rev := ""
	if len(f.args) == 2 {
		rev = f.args[1]
	}
	st, err := c.v.Status(ctx, views.SSH(who.User), f.args[0], rev)
	if err != nil {
		sshcmd.Fail(stderr, "%v", err)
		return StatusUnknown
	}
	codes := make([]int, 0, len(st.Revisions))
	for _, r := range st.Revisions {
		codes = append(codes, statusCode(r.Result))
	}
	code := worst(codes)
	if len(codes) == 0 {
		code = StatusNone
	}
	if f.json {
		if sshcmd.WriteJSON(stdout, stderr, st) != 0 {
			return StatusUnknown
		}
		return code
	}
	if len(st.Revisions) == 0 {
		fmt.Fprintf(stdout, "%s has no branches yet.\n", st.Repo)
		return code
	}
	for i, r := range st.Revisions {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		// Ref names and revisions are the pushers' and the caller's.
		fmt.Fprintf(stdout, "%s %s @ %s: %s\n", st.Repo, termsafe.Line(gitrev.ShortRef(r.Name)), short(r.Commit), r.Result)
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		for _, b := range r.Builds {
			trigger := string(b.Trigger)
			if b.Schedule != "" {
				trigger += ":" + b.Schedule
			}
			tail := termsafe.Line(b.Reason)
			if link := c.v.BuildURL(ctx, b.ID); link != "" {
				tail = link
			}
			fmt.Fprintf(tw, "  build\t#%d\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.State, termsafe.Line(gitrev.ShortRef(b.Ref)),
				termsafe.Line(trigger), when(b.Started), duration(b.Started, b.Finished), tail)
		}
		for _, d := range r.Deployments {
			fmt.Fprintf(tw, "  deploy\t#%d\t%s\t%s\tbuild #%d\t%s\t%s\t%s\n", d.ID, d.State, d.Env, d.BuildID,
				when(d.Started), duration(d.Started, d.Finished), termsafe.Line(d.Reason))
		}
		if len(r.Builds) == 0 && len(r.Deployments) == 0 {
			fmt.Fprintln(tw, "  no builds or deployments of this commit")
		}
		tw.Flush()
	}
	return code
}
