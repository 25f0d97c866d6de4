package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"slipway/gitserver"
	"slipway/internal/gitrev"
	"slipway/internal/manifest"
	"slipway/internal/sshcmd"
	"slipway/internal/termsafe"
	"slipway/record"
	"slipway/views"
)

// Options are what the commands work on: the read model, which the JSON
// API serves too.
type Options struct {
	Views *views.Service
}

// Commands returns the SSH commands, to be given to gitserver.Options.
func Commands(o Options) map[string]gitserver.Command {
	c := &console{o.Views}
	return map[string]gitserver.Command{
		"repos":     {Usage: "repos [--json]", Summary: "the repositories you can read, with their last push", Run: c.repos},
		"builds":    {Usage: "builds [REPO] [--limit N] [--json]", Summary: "recent builds you can see", Run: c.builds},
		"log":       {Usage: "log [deploy] ID [-f] [--raw]", Summary: "a build's (or deployment's) log; -f follows it to the end; --raw gives the stored bytes", Run: c.log},
		"cancel":    {Usage: "cancel ID", Summary: "cancel a queued or running build (needs write)", Run: c.cancel},
		"retry":     {Usage: "retry [deploy] ID", Summary: "run a build again (needs write), or a failed deployment (needs release)", Run: c.retry},
		"deploys":   {Usage: "deploys REPO [ENV] [--limit N] [--json]", Summary: "deployment history", Run: c.deploys},
		"releases":  {Usage: "releases REPO ENV [--json]", Summary: "the releases on an environment's target, which is live, and their artifacts", Run: c.releases},
		"schedules": {Usage: "schedules [REPO] [--json]", Summary: "schedules, their next fire time and last run", Run: c.schedules},
		"run":       {Usage: "run REPO SCHEDULE", Summary: "fire a schedule now (needs write)", Run: c.run},
		"status":    {Usage: "status REPO [REV] [--json]", Summary: "builds and deployments of a revision (default: each branch tip); exit 0 passed, 1 failed, 2 none, 3 running", Run: c.status},
	}
}

type console struct{ v *views.Service }

// flags parses the common options of the listing commands.
type flags struct {
	json   bool
	follow bool
	raw    bool
	limit  int
	args   []string
}

// parse parses a command's arguments: --json always, --limit N with limit,
// and log's -f and --raw with log.
func parse(name string, args []string, stderr io.Writer, limit, log bool) (flags, bool) {
	var f flags
	fs := sshcmd.NewFlags(name)
	fs.BoolVar(&f.json, "json", false, "")
	if limit {
		fs.IntVar(&f.limit, "limit", views.DefaultLimit, "")
	}
	if log {
		fs.BoolVar(&f.follow, "f", false, "")
		fs.BoolVar(&f.raw, "raw", false, "")
	}
	// Flags may follow the arguments ("log 12 -f").
	rest, err := sshcmd.Parse(fs, args)
	if err != nil {
		fmt.Fprintf(stderr, "slipway: %s: %v\n", name, err)
		return f, false
	}
	f.args = rest
	if f.limit <= 0 && limit {
		f.limit = views.DefaultLimit
	}
	return f, true
}

func (c *console) repos(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("repos", args, stderr, false, false)
	if !ok || len(f.args) > 0 {
		return sshcmd.Fail(stderr, "usage: repos [--json]")
	}
	rs, err := c.v.Repos(ctx, views.SSH(who.User))
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, rs)
	}
	if len(rs) == 0 {
		fmt.Fprintln(stdout, "No repositories you can read yet.")
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tACCESS\tLAST PUSH")
	for _, r := range rs {
		lp := "never"
		if p := r.LastPush; p != nil {
			lp = fmt.Sprintf("%s by %s: %s", p.Time.Format("2006-01-02 15:04 MST"), p.User, summarizeRefs(p.Refs))
		}
		name := r.Name
		if !r.Configured {
			name += " (unconfigured)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", name, strings.Join(r.Access, ","), lp)
	}
	tw.Flush()
	return 0
}

// summarizeRefs describes a push's refs in a few words: "main 1a2b3c4,
// tag v1 deleted, +3 more". Ref names are the pusher's: shown safe.
func summarizeRefs(refs []record.RefUpdate) string {
	if len(refs) == 0 {
		return "no refs"
	}
	const shown = 3
	var parts []string
	for i, r := range refs {
		if i == shown {
			parts = append(parts, fmt.Sprintf("+%d more", len(refs)-shown))
			break
		}
		name := r.Name
		switch {
		case strings.HasPrefix(name, "refs/heads/"):
			name = strings.TrimPrefix(name, "refs/heads/")
		case strings.HasPrefix(name, "refs/tags/"):
			name = "tag " + strings.TrimPrefix(name, "refs/tags/")
		}
		name = termsafe.Line(name)
		switch {
		case record.ZeroID(r.New):
			parts = append(parts, name+" deleted")
		default:
			parts = append(parts, name+" "+r.New[:min(7, len(r.New))])
		}
	}
	return strings.Join(parts, ", ")
}

func (c *console) builds(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("builds", args, stderr, true, false)
	if !ok || len(f.args) > 1 {
		return sshcmd.Fail(stderr, "usage: builds [REPO] [--limit N] [--json]")
	}
	q := views.BuildQuery{Limit: f.limit}
	if len(f.args) == 1 {
		q.Repo = f.args[0]
	}
	page, err := c.v.Builds(ctx, views.SSH(who.User), q)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, page.Builds)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	// With [http] public_url, each build's page is a column too.
	links := c.v.BuildURL(ctx, 1) != ""
	// Builds that ran elsewhere than this host (on Kubernetes) say where.
	elsewhere := slices.ContainsFunc(page.Builds, func(b views.Build) bool { return strings.HasPrefix(b.RanOn, "kubernetes") })
	header := "ID\tREPO\tREF\tCOMMIT\tSTATE\tTRIGGER\tSTARTED\tDURATION\tARTIFACTS\t"
	if links {
		header += "LINK\t"
	}
	if elsewhere {
		header += "RAN ON\t"
	}
	header += "REASON"
	fmt.Fprintln(tw, header)
	for _, b := range page.Builds {
		trigger := string(b.Trigger)
		if b.Schedule != "" {
			trigger += ":" + b.Schedule
		}
		// A reason quotes a step's command, which the pusher wrote.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", b.ID, b.Repo, termsafe.Line(gitrev.ShortRef(b.Ref)), short(b.Commit), b.State,
			termsafe.Line(trigger), when(b.Started), duration(b.Started, b.Finished), manifest.Short(b.Digest))
		if links {
			fmt.Fprintf(tw, "%s\t", c.v.BuildURL(ctx, b.ID))
		}
		if elsewhere {
			fmt.Fprintf(tw, "%s\t", termsafe.Line(b.RanOn))
		}
		fmt.Fprintf(tw, "%s\n", termsafe.Line(b.Reason))
	}
	tw.Flush()
	return 0
}

func (c *console) log(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("log", args, stderr, false, true)
	if !ok {
		return 1
	}
	kind := "build"
	if len(f.args) == 2 && (f.args[0] == "deploy" || f.args[0] == "build") {
		kind, f.args = f.args[0], f.args[1:]
	}
	if len(f.args) != 1 {
		return sshcmd.Fail(stderr, "usage: log [deploy] ID [-f] [--raw]")
	}
	caller := views.SSH(who.User)
	if kind == "deploy" {
		id, err := views.ParseID("deployment", f.args[0])
		if err != nil {
			return sshcmd.Fail(stderr, "%v", err)
		}
		return c.copyLog(ctx, stdout, stderr, f.raw, "deployment", id, func(w io.Writer) error {
			return c.v.FollowDeployment(ctx, caller, id, w, f.follow)
		})
	}
	id, err := views.ParseID("build", f.args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if code := c.copyLog(ctx, stdout, stderr, f.raw, "build", id, func(w io.Writer) error {
		return c.v.FollowBuild(ctx, caller, id, w, f.follow)
	}); code != 0 || !f.follow {
		return code
	}
	if b, err := c.v.Build(ctx, caller, id); err == nil && b.State.Final() {
		fmt.Fprintf(stdout, "build #%d %s%s\n", b.ID, b.State, reasonSuffix(b.Reason))
		if b.State != record.StatePassed && b.State != record.StateSkipped {
			return 1
		}
	}
	return 0
}

// copyLog copies a log for the caller with copy: the stored bytes with
// --raw (for scripts and downloads), else through a termsafe filter,
// because a log holds what steps, deployments and their targets printed,
// escape sequences and all.
func (c *console) copyLog(ctx context.Context, stdout, stderr io.Writer, raw bool, what string, id int64, copy func(io.Writer) error) int {
	out, end := stdout, func() {}
	if !raw {
		w := termsafe.NewWriter(stdout)
		out, end = w, func() { _ = w.Close() }
	}
	err := copy(out)
	end()
	switch {
	case err == nil:
		return 0
	case errors.Is(err, views.ErrNotFound):
		return sshcmd.Fail(stderr, "%v", err)
	case ctx.Err() != nil:
		return 1
	}
	return sshcmd.Fail(stderr, "log of %s %d: %v", what, id, err)
}

func (c *console) cancel(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		return sshcmd.Fail(stderr, "usage: cancel ID")
	}
	id, err := views.ParseID("build", args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	b, err := c.v.Cancel(ctx, views.SSH(who.User), id)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "build #%d cancelled\n", b.ID)
	return 0
}

func (c *console) retry(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "deploy" {
		return c.retryDeploy(ctx, who, args[1], stdout, stderr)
	}
	if len(args) != 1 {
		return sshcmd.Fail(stderr, "usage: retry [deploy] ID")
	}
	id, err := views.ParseID("build", args[0])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	nb, err := c.v.Retry(ctx, views.SSH(who.User), id)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "build #%d queued: a retry of build #%d (%s @ %s)\n", nb.ID, id, termsafe.Line(gitrev.ShortRef(nb.Ref)), short(nb.Commit))
	return 0
}

// retryDeploy queues a failed deployment again, for a caller who may
// deploy to its environment.
func (c *console) retryDeploy(ctx context.Context, who gitserver.Caller, arg string, stdout, stderr io.Writer) int {
	id, err := views.ParseID("deployment", arg)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	nd, err := c.v.RetryDeploy(ctx, views.SSH(who.User), id)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	fmt.Fprintf(stdout, "deployment #%d queued: a retry of deployment #%d to %s — follow: log deploy %d -f\n", nd.ID, id, nd.Env, nd.ID)
	return 0
}

func (c *console) deploys(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("deploys", args, stderr, true, false)
	if !ok || len(f.args) < 1 || len(f.args) > 2 {
		return sshcmd.Fail(stderr, "usage: deploys REPO [ENV] [--limit N] [--json]")
	}
	q := views.DeploymentQuery{Repo: f.args[0], Limit: f.limit}
	if len(f.args) == 2 {
		q.Env = f.args[1]
	}
	page, err := c.v.Deployments(ctx, views.SSH(who.User), q)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, page.Deployments)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	many := slices.ContainsFunc(page.Deployments, func(d views.Deployment) bool { return len(d.Hosts) > 0 })
	hostsCol := ""
	if many {
		hostsCol = "HOSTS\t"
	}
	fmt.Fprintln(tw, "ID\tENV\tBUILD\tCOMMIT\tARTIFACTS\tSTATE\tTRIGGER\tBY\tSTARTED\tDURATION\tRELEASE\t"+hostsCol+"REASON")
	for _, d := range page.Deployments {
		by := d.User
		if by == "" {
			by = "-"
		}
		hosts := ""
		if many {
			hosts = hostStates(d.Hosts) + "\t"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s%s\n", d.ID, d.Env, d.BuildID, short(d.Commit),
			manifest.Short(d.Digest), d.State, d.Trigger, by, when(d.Started), duration(d.Started, d.Finished), orDash(d.Release),
			hosts, termsafe.Line(d.Reason)) // it may quote what a target printed
	}
	tw.Flush()
	return 0
}

// hostStates sums up the hosts of a deployment: "5 live", "2 rolled_back,
// 1 failed, 2 skipped"; "-" for a deployment to one host.
func hostStates(hs []views.DeploymentHost) string {
	if len(hs) == 0 {
		return "-"
	}
	var order []record.HostState
	n := map[record.HostState]int{}
	for _, h := range hs {
		if n[h.State] == 0 {
			order = append(order, h.State)
		}
		n[h.State]++
	}
	parts := make([]string, len(order))
	for i, st := range order {
		parts[i] = fmt.Sprintf("%d %s", n[st], st)
	}
	return strings.Join(parts, ", ")
}

func (c *console) releases(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("releases", args, stderr, false, false)
	if !ok || len(f.args) != 2 {
		return sshcmd.Fail(stderr, "usage: releases REPO ENV [--json]")
	}
	l, err := c.v.Releases(ctx, views.SSH(who.User), f.args[0], f.args[1])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, l.Releases)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELEASE\tCOMMIT\tARTIFACTS\tDEPLOYMENT\tBUILD\tCOMPLETED\tSTATUS")
	for _, r := range l.Releases {
		status := ""
		switch {
		case r.Live:
			status = "live"
		case !r.Complete:
			status = "partial"
		}
		// Release names are read from the target.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", termsafe.Line(r.ID), short(r.Commit), manifest.Short(r.Digest),
			idOrDash(r.Deployment), idOrDash(r.Build), when(r.Completed), status)
	}
	tw.Flush()
	if len(l.Hosts) > 0 {
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tLIVE\tLAST DEPLOYMENT\tRESULT\tDETAIL")
		for _, h := range l.Hosts {
			live, detail := orDash(h.Live), h.LastDetail
			if h.Error != "" {
				live, detail = "?", "could not be listed: "+h.Error
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termsafe.Line(h.Host), termsafe.Line(live), idOrDash(h.LastDeployment),
				orDash(string(h.LastState)), termsafe.Line(detail))
		}
		tw.Flush()
	}
	if l.Note != "" {
		fmt.Fprintf(stdout, "(%s)\n", termsafe.Line(l.Note))
	}
	return 0
}

func (c *console) schedules(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("schedules", args, stderr, false, false)
	if !ok || len(f.args) > 1 {
		return sshcmd.Fail(stderr, "usage: schedules [REPO] [--json]")
	}
	repo := ""
	if len(f.args) == 1 {
		repo = f.args[0]
	}
	ss, err := c.v.Schedules(ctx, views.SSH(who.User), repo)
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	if f.json {
		return sshcmd.WriteJSON(stdout, stderr, ss)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tSCHEDULE\tSPEC\tBRANCHES\tNEXT\tLAST RUN")
	for _, s := range ss {
		next := "never"
		if s.Next != nil {
			next = s.Next.Format("2006-01-02 15:04 MST")
		}
		last := "never"
		if b := s.LastRun; b != nil {
			last = fmt.Sprintf("#%d %s%s", b.ID, b.State, reasonSuffix(b.Reason))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Repo, s.Name, s.Spec, strings.Join(s.Branches, ","), next, last)
	}
	tw.Flush()
	return 0
}

func (c *console) run(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		return sshcmd.Fail(stderr, "usage: run REPO SCHEDULE")
	}
	bs, err := c.v.RunSchedule(ctx, views.SSH(who.User), args[0], args[1])
	if err != nil {
		return sshcmd.Fail(stderr, "%v", err)
	}
	for _, b := range bs {
		fmt.Fprintf(stdout, "build #%d %s: %s @ %s%s\n", b.ID, b.State, termsafe.Line(gitrev.ShortRef(b.Ref)), short(b.Commit), reasonSuffix(b.Reason))
	}
	return 0
}

// reasonSuffix is " (reason)", made safe: a reason may quote a step's
// command or what a target printed.
func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + termsafe.Line(r) + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func idOrDash(id int64) string {
	if id == 0 {
		return "-"
	}
	return "#" + strconv.FormatInt(id, 10)
}

// short is a commit id in a listing: seven characters, or "-" for none.
func short(id string) string { return orDash(gitrev.Short(id)) }

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func duration(start, end *time.Time) string {
	switch {
	case start == nil:
		return "-"
	case end == nil:
		return "running"
	}
	return end.Sub(*start).Round(10 * time.Millisecond).String()
}
