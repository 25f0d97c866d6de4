package console

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slipway/internal/gitrev"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"slipway/build/schedule"
	"slipway/configs"
	"slipway/deploy"
	"slipway/gitserver"
	"slipway/internal/manifest"
	"slipway/internal/termsafe"
	"slipway/record"
)

// Builds is what the commands need of the build service.
type Builds interface {
	List(ctx context.Context, repo string, limit int) ([]record.Build, error)
	Get(ctx context.Context, id int64) (record.Build, error)
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
	CancelBy(ctx context.Context, id int64, user string) error
	Retry(ctx context.Context, id int64) (record.Build, error)
}

// Deploys is what the commands need of the deployment service.
type Deploys interface {
	List(ctx context.Context, repo, env string, limit int) ([]record.Deployment, error)
	Releases(ctx context.Context, repo, env string) (deploy.Listing, error)
	Follow(ctx context.Context, id int64, w io.Writer, follow bool) error
	Get(ctx context.Context, id int64) (record.Deployment, error)
	Retry(ctx context.Context, id int64, user string) (record.Deployment, error)
}

// Schedules is what the commands need of the scheduler.
type Schedules interface {
	List(ctx context.Context, repo string) ([]schedule.Status, error)
	RunNow(ctx context.Context, repo, name, user string) ([]record.Build, error)
}

// Options are the services the commands work on.
type Options struct {
	Config    configs.Source
	Builds    Builds
	Deploys   Deploys
	Schedules Schedules
}

// Commands returns the SSH commands, to be given to gitserver.Options.
func Commands(o Options) map[string]gitserver.Command {
	c := &console{o}
	return map[string]gitserver.Command{
		"builds":    {Usage: "builds [REPO] [--limit N] [--json]", Summary: "recent builds you can see", Run: c.builds},
		"log":       {Usage: "log [deploy] ID [-f] [--raw]", Summary: "a build's (or deployment's) log; -f follows it to the end; --raw gives the stored bytes", Run: c.log},
		"cancel":    {Usage: "cancel ID", Summary: "cancel a queued or running build (needs write)", Run: c.cancel},
		"retry":     {Usage: "retry [deploy] ID", Summary: "run a build again (needs write), or a failed deployment (needs release)", Run: c.retry},
		"deploys":   {Usage: "deploys REPO [ENV] [--limit N] [--json]", Summary: "deployment history", Run: c.deploys},
		"releases":  {Usage: "releases REPO ENV [--json]", Summary: "the releases on an environment's target, which is live, and their artifacts", Run: c.releases},
		"schedules": {Usage: "schedules [REPO] [--json]", Summary: "schedules, their next fire time and last run", Run: c.schedules},
		"run":       {Usage: "run REPO SCHEDULE", Summary: "fire a schedule now (needs write)", Run: c.run},
	}
}

type console struct{ o Options }

// notFound is what a caller without read access is told about an object:
// the same as for one that does not exist, so that names cannot be probed.
func notFound(what string) error { return fmt.Errorf("%s not found", what) }

// readable returns the canonical name of a repository the user may read, or
// the error to show (a hidden repository is "not found").
func (c *console) readable(ctx context.Context, user, arg string) (string, error) {
	name, err := configs.CleanRepoName(arg)
	if err != nil {
		return "", err
	}
	if !c.can(ctx, user, name, configs.Read) {
		return "", notFound(fmt.Sprintf("repository %q", name))
	}
	return name, nil
}

func (c *console) can(ctx context.Context, user, repo string, want configs.Access) bool {
	return configs.Snapshot(ctx, c.o.Config).Access(user, repo).Has(want)
}

// fail prints one line and returns exit status 1.
func fail(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "slipway: "+format+"\n", args...)
	return 1
}

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
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.json, "json", false, "")
	if limit {
		fs.IntVar(&f.limit, "limit", 20, "")
	}
	if log {
		fs.BoolVar(&f.follow, "f", false, "")
		fs.BoolVar(&f.raw, "raw", false, "")
	}
	// Flags may follow the arguments ("log 12 -f").
	var rest []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			fmt.Fprintf(stderr, "slipway: %s: %v\n", name, err)
			return f, false
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	f.args = rest
	if f.limit <= 0 && limit {
		f.limit = 20
	}
	return f, true
}

func writeJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}

func (c *console) builds(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("builds", args, stderr, true, false)
	if !ok || len(f.args) > 1 {
		return fail(stderr, "usage: builds [REPO] [--limit N] [--json]")
	}
	repo := ""
	if len(f.args) == 1 {
		name, err := c.readable(ctx, who.User, f.args[0])
		if err != nil {
			return fail(stderr, "%v", err)
		}
		repo = name
	}
	// Without a repo, read more than the limit so that the caller's share
	// of the newest builds still fills it.
	fetch := f.limit
	if repo == "" {
		fetch = f.limit * 10
	}
	all, err := c.o.Builds.List(ctx, repo, fetch)
	if err != nil {
		return fail(stderr, "list builds: %v", err)
	}
	var bs []record.Build
	for _, b := range all {
		if len(bs) < f.limit && c.can(ctx, who.User, b.Repo, configs.Read) {
			bs = append(bs, b)
		}
	}
	if f.json {
		return writeJSON(stdout, buildsJSON(bs))
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREPO\tREF\tCOMMIT\tSTATE\tTRIGGER\tSTARTED\tDURATION\tARTIFACTS\tREASON")
	for _, b := range bs {
		trigger := string(b.Trigger)
		if b.Schedule != "" {
			trigger += ":" + b.Schedule
		}
		// A reason quotes a step's command, which the pusher wrote.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Repo, termsafe.Line(gitrev.ShortRef(b.Ref)), short(b.Commit), b.State,
			termsafe.Line(trigger), when(b.StartedAt), duration(b.StartedAt, b.FinishedAt), manifest.Short(b.ArtifactsDigest), termsafe.Line(b.Reason))
	}
	tw.Flush()
	return 0
}

type buildJSON struct {
	ID         int64          `json:"id"`
	Repo       string         `json:"repo"`
	Ref        string         `json:"ref"`
	Commit     string         `json:"commit"`
	State      record.State   `json:"state"`
	Reason     string         `json:"reason,omitempty"`
	Trigger    record.Trigger `json:"trigger"`
	Schedule   string         `json:"schedule,omitempty"`
	Pipeline   string         `json:"pipeline"`
	Attempt    int            `json:"attempt"`
	Created    time.Time      `json:"created"`
	Started    *time.Time     `json:"started,omitempty"`
	Finished   *time.Time     `json:"finished,omitempty"`
	Steps      []stepJSON     `json:"steps,omitempty"`
	PushID     int64          `json:"push_id,omitempty"`
	RetryOf    int64          `json:"retry_of,omitempty"`
	DurationMS int64          `json:"duration_ms,omitempty"`
	// Digest identifies the artifact set the build kept ("sha256:<64 hex>").
	Digest string `json:"digest,omitempty"`
}

// stepJSON is one step's result, in the snake_case of every other document.
type stepJSON struct {
	Name       string `json:"name"`
	ExitCode   int    `json:"exit_code"`
	DurationMS int64  `json:"duration_ms"`
}

func buildsJSON(bs []record.Build) []buildJSON {
	out := make([]buildJSON, 0, len(bs))
	for _, b := range bs {
		j := buildJSON{ID: b.ID, Repo: b.Repo, Ref: b.Ref, Commit: b.Commit, State: b.State, Reason: b.Reason,
			Trigger: b.Trigger, Schedule: b.Schedule, Pipeline: b.Pipeline, Attempt: b.Attempt, Created: b.CreatedAt,
			PushID: b.PushID, RetryOf: b.RetryOf, Started: timePtr(b.StartedAt), Finished: timePtr(b.FinishedAt),
			Digest: b.ArtifactsDigest}
		if !b.StartedAt.IsZero() && !b.FinishedAt.IsZero() {
			j.DurationMS = b.FinishedAt.Sub(b.StartedAt).Milliseconds()
		}
		for _, st := range b.Steps {
			j.Steps = append(j.Steps, stepJSON{Name: st.Name, ExitCode: st.ExitCode, DurationMS: st.Duration.Milliseconds()})
		}
		out = append(out, j)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// build finds a build the caller may see, or says it does not exist.
func (c *console) build(ctx context.Context, user, arg string, want configs.Access) (record.Build, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil || id <= 0 {
		return record.Build{}, fmt.Errorf("%q is not a build id", arg)
	}
	b, err := c.o.Builds.Get(ctx, id)
	if errors.Is(err, record.ErrNotFound) || err == nil && !c.can(ctx, user, b.Repo, configs.Read) {
		return record.Build{}, notFound(fmt.Sprintf("build %d", id))
	}
	if err != nil {
		return record.Build{}, err
	}
	if !c.can(ctx, user, b.Repo, want) {
		return record.Build{}, fmt.Errorf("user %s may read %q but not change its builds", user, b.Repo)
	}
	return b, nil
}

func (c *console) log(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("log", args, stderr, false, true)
	if !ok {
		return 1
	}
	if len(f.args) == 2 && (f.args[0] == "deploy" || f.args[0] == "build") {
		if f.args[0] == "deploy" {
			return c.deployLog(ctx, who, f.args[1], f.follow, f.raw, stdout, stderr)
		}
		f.args = f.args[1:]
	}
	if len(f.args) != 1 {
		return fail(stderr, "usage: log [deploy] ID [-f] [--raw]")
	}
	b, err := c.build(ctx, who.User, f.args[0], configs.Read)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	out, end := logOutput(stdout, f.raw)
	err = c.o.Builds.Follow(ctx, b.ID, out, f.follow)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return 1
		}
		return fail(stderr, "log of build %d: %v", b.ID, err)
	}
	if f.follow {
		if fb, err := c.o.Builds.Get(ctx, b.ID); err == nil && fb.State.Final() {
			fmt.Fprintf(stdout, "build #%d %s%s\n", fb.ID, fb.State, reasonSuffix(fb.Reason))
			if fb.State != record.StatePassed && fb.State != record.StateSkipped {
				return 1
			}
		}
	}
	return 0
}

// deployment finds a deployment the caller may see, or says it does not
// exist.
func (c *console) deployment(ctx context.Context, user, arg string) (record.Deployment, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil || id <= 0 {
		return record.Deployment{}, fmt.Errorf("%q is not a deployment id", arg)
	}
	d, err := c.o.Deploys.Get(ctx, id)
	if errors.Is(err, record.ErrNotFound) || err == nil && !c.can(ctx, user, d.Repo, configs.Read) {
		return record.Deployment{}, notFound(fmt.Sprintf("deployment %d", id))
	}
	if err != nil {
		return record.Deployment{}, fmt.Errorf("deployment %d: %w", id, err)
	}
	return d, nil
}

// logOutput is where a log is copied for the caller: stdout itself for
// --raw (the stored bytes, for scripts and downloads), else a termsafe
// filter, because a log holds what steps, deployments and their targets
// printed, escape sequences and all. end must be called once the log is
// copied.
func logOutput(stdout io.Writer, raw bool) (out io.Writer, end func()) {
	if raw {
		return stdout, func() {}
	}
	w := termsafe.NewWriter(stdout)
	return w, func() { _ = w.Close() }
}

func (c *console) deployLog(ctx context.Context, who gitserver.Caller, arg string, follow, raw bool, stdout, stderr io.Writer) int {
	d, err := c.deployment(ctx, who.User, arg)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	id := d.ID
	out, end := logOutput(stdout, raw)
	err = c.o.Deploys.Follow(ctx, id, out, follow)
	end()
	if err != nil {
		if ctx.Err() != nil {
			return 1
		}
		return fail(stderr, "log of deployment %d: %v", id, err)
	}
	return 0
}

func (c *console) cancel(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		return fail(stderr, "usage: cancel ID")
	}
	b, err := c.build(ctx, who.User, args[0], configs.Write)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if b.State.Final() {
		return fail(stderr, "build %d already ended: %s", b.ID, b.State)
	}
	if err := c.o.Builds.CancelBy(ctx, b.ID, who.User); err != nil {
		return fail(stderr, "cancel build %d: %v", b.ID, err)
	}
	fmt.Fprintf(stdout, "build #%d cancelled\n", b.ID)
	return 0
}

func (c *console) retry(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) == 2 && args[0] == "deploy" {
		return c.retryDeploy(ctx, who, args[1], stdout, stderr)
	}
	if len(args) != 1 {
		return fail(stderr, "usage: retry [deploy] ID")
	}
	b, err := c.build(ctx, who.User, args[0], configs.Write)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	nb, err := c.o.Builds.Retry(ctx, b.ID)
	if err != nil {
		return fail(stderr, "retry build %d: %v", b.ID, err)
	}
	fmt.Fprintf(stdout, "build #%d queued: a retry of build #%d (%s @ %s)\n", nb.ID, b.ID, termsafe.Line(gitrev.ShortRef(b.Ref)), short(b.Commit))
	return 0
}

// retryDeploy queues a failed deployment again; the deployment service checks
// that the caller may release to its environment.
func (c *console) retryDeploy(ctx context.Context, who gitserver.Caller, arg string, stdout, stderr io.Writer) int {
	d, err := c.deployment(ctx, who.User, arg)
	if err != nil {
		return fail(stderr, "%v", err)
	}
	id := d.ID
	nd, err := c.o.Deploys.Retry(ctx, id, who.User)
	if err != nil {
		return fail(stderr, "retry deployment %d: %v", id, err)
	}
	fmt.Fprintf(stdout, "deployment #%d queued: a retry of deployment #%d to %s — follow: log deploy %d -f\n", nd.ID, id, nd.Env, nd.ID)
	return 0
}

func (c *console) deploys(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("deploys", args, stderr, true, false)
	if !ok || len(f.args) < 1 || len(f.args) > 2 {
		return fail(stderr, "usage: deploys REPO [ENV] [--limit N] [--json]")
	}
	repo, err := c.readable(ctx, who.User, f.args[0])
	if err != nil {
		return fail(stderr, "%v", err)
	}
	env := ""
	if len(f.args) == 2 {
		env = f.args[1]
	}
	ds, err := c.o.Deploys.List(ctx, repo, env, f.limit)
	if err != nil {
		return fail(stderr, "list deployments: %v", err)
	}
	if f.json {
		out := make([]deployJSON, 0, len(ds))
		for _, d := range ds {
			out = append(out, deployJSON{ID: d.ID, Repo: d.Repo, Env: d.Env, BuildID: d.BuildID, Commit: d.Commit,
				Trigger: d.Trigger, User: d.User, PushID: d.PushID, State: d.State, Reason: d.Reason, Release: d.ReleaseID,
				Digest: d.Digest, Created: d.CreatedAt, Started: timePtr(d.StartedAt), Finished: timePtr(d.FinishedAt)})
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENV\tBUILD\tCOMMIT\tARTIFACTS\tSTATE\tTRIGGER\tBY\tSTARTED\tDURATION\tRELEASE\tREASON")
	for _, d := range ds {
		by := d.User
		if by == "" {
			by = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Env, d.BuildID, short(d.Commit),
			manifest.Short(d.Digest), d.State, d.Trigger, by, when(d.StartedAt), duration(d.StartedAt, d.FinishedAt), orDash(d.ReleaseID),
			termsafe.Line(d.Reason)) // it may quote what a target printed
	}
	tw.Flush()
	return 0
}

func (c *console) releases(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("releases", args, stderr, false, false)
	if !ok || len(f.args) != 2 {
		return fail(stderr, "usage: releases REPO ENV [--json]")
	}
	repo, err := c.readable(ctx, who.User, f.args[0])
	if err != nil {
		return fail(stderr, "%v", err)
	}
	l, err := c.o.Deploys.Releases(ctx, repo, f.args[1])
	if err != nil {
		return fail(stderr, "releases of %s on %s: %v", repo, f.args[1], err)
	}
	if f.json {
		out := make([]releaseJSON, 0, len(l.Releases))
		for _, r := range l.Releases {
			out = append(out, releaseJSON{ID: r.ID, Live: r.Live, Complete: r.Complete, Commit: r.Commit, Completed: timePtr(r.Time),
				Digest: r.Digest, Deployment: r.Deployment, Build: r.Build, Listed: timePtr(l.Listed), Note: l.Note})
		}
		return writeJSON(stdout, out)
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
			idOrDash(r.Deployment), idOrDash(r.Build), when(r.Time), status)
	}
	tw.Flush()
	if l.Note != "" {
		fmt.Fprintf(stdout, "(%s)\n", termsafe.Line(l.Note))
	}
	return 0
}

func (c *console) schedules(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	f, ok := parse("schedules", args, stderr, false, false)
	if !ok || len(f.args) > 1 {
		return fail(stderr, "usage: schedules [REPO] [--json]")
	}
	repo := ""
	if len(f.args) == 1 {
		name, err := c.readable(ctx, who.User, f.args[0])
		if err != nil {
			return fail(stderr, "%v", err)
		}
		repo = name
	}
	all, err := c.o.Schedules.List(ctx, repo)
	if err != nil {
		return fail(stderr, "list schedules: %v", err)
	}
	var ss []schedule.Status
	for _, s := range all {
		if c.can(ctx, who.User, s.Repo, configs.Read) {
			ss = append(ss, s)
		}
	}
	if f.json {
		out := make([]scheduleJSON, 0, len(ss))
		for _, s := range ss {
			j := scheduleJSON{Repo: s.Repo, Name: s.Name, Spec: s.Spec, Zone: s.Zone, Branches: s.Branches,
				Pipeline: s.Pipeline, Next: timePtr(s.Next)}
			if s.LastRun != nil {
				j.LastRun = &buildsJSON([]record.Build{*s.LastRun})[0]
			}
			out = append(out, j)
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPO\tSCHEDULE\tSPEC\tBRANCHES\tNEXT\tLAST RUN")
	for _, s := range ss {
		next := "never"
		if !s.Next.IsZero() {
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

type deployJSON struct {
	ID       int64                `json:"id"`
	Repo     string               `json:"repo"`
	Env      string               `json:"env"`
	BuildID  int64                `json:"build_id"`
	Commit   string               `json:"commit"`
	Trigger  record.DeployTrigger `json:"trigger"`
	User     string               `json:"user,omitempty"`
	PushID   int64                `json:"push_id,omitempty"`
	State    record.DeployState   `json:"state"`
	Reason   string               `json:"reason,omitempty"`
	Release  string               `json:"release,omitempty"`
	Digest   string               `json:"digest,omitempty"` // the artifact set shipped
	Created  time.Time            `json:"created"`
	Started  *time.Time           `json:"started,omitempty"`
	Finished *time.Time           `json:"finished,omitempty"`
}

type releaseJSON struct {
	ID         string     `json:"id"`
	Live       bool       `json:"live"`
	Complete   bool       `json:"complete"`
	Commit     string     `json:"commit,omitempty"`
	Completed  *time.Time `json:"completed,omitempty"`
	Digest     string     `json:"digest,omitempty"`     // the artifact set it holds
	Deployment int64      `json:"deployment,omitempty"` // the deployment that shipped it, from Slipway's records
	Build      int64      `json:"build,omitempty"`
	// Listed is when the target was listed (the answer is cached for a
	// few seconds); Note says why the listing may be out of date.
	Listed *time.Time `json:"listed,omitempty"`
	Note   string     `json:"note,omitempty"`
}

type scheduleJSON struct {
	Repo     string     `json:"repo"`
	Name     string     `json:"name"`
	Spec     string     `json:"spec"`
	Zone     string     `json:"zone"`
	Branches []string   `json:"branches"`
	Pipeline string     `json:"pipeline"`
	Next     *time.Time `json:"next,omitempty"`
	LastRun  *buildJSON `json:"last_run,omitempty"`
}

func (c *console) run(ctx context.Context, who gitserver.Caller, args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		return fail(stderr, "usage: run REPO SCHEDULE")
	}
	repo, err := c.readable(ctx, who.User, args[0])
	if err != nil {
		return fail(stderr, "%v", err)
	}
	if !c.can(ctx, who.User, repo, configs.Write) {
		return fail(stderr, "user %s may read %q but not run its schedules", who.User, repo)
	}
	bs, err := c.o.Schedules.RunNow(ctx, repo, args[1], who.User)
	if errors.Is(err, schedule.ErrUnknownSchedule) {
		return fail(stderr, "%v", notFound(fmt.Sprintf("schedule %q of %q", args[1], repo)))
	}
	if err != nil {
		return fail(stderr, "run %s %s: %v", repo, args[1], err)
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

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func duration(start, end time.Time) string {
	switch {
	case start.IsZero():
		return "-"
	case end.IsZero():
		return "running"
	}
	return end.Sub(start).Round(10 * time.Millisecond).String()
}
