package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"slipway/internal/shell"
)

// stage is one target's deployment between its transfer and its end: the
// open line to the target, what was there before, and what has been done.
// Ship runs its steps in order for one target; Roll runs them across the
// hosts of an environment (every host prepared before any is switched).
// A stage is used by one goroutine at a time.
type stage struct {
	s       *Shipper
	req     Request
	sess    session
	st      state // the target as it was found
	res     Result
	partial bool     // the release was transferred into <id>.partial (not reused)
	pruned  []string // releases the switch will prune
	log     *slog.Logger
	started time.Time
}

// prepare runs Ship's steps 1 to 3 on req.Target: connect, remove stale
// partial releases, learn what is live, and transfer and verify the
// release (or verify the complete one already there). Nothing is switched.
// It returns nil only when it could not connect; otherwise the caller
// closes the stage, also when err is not nil (err then says why the
// target cannot take the release, and current is as it was).
func (s *Shipper) prepare(ctx context.Context, req Request) (*stage, error) {
	if req.Log == nil {
		req.Log = io.Discard
	}
	// ssh and rsync write stdout and stderr from separate goroutines.
	req.Log = &syncWriter{w: req.Log}
	if req.Keep == 0 {
		req.Keep = DefaultKeep
	}
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	g := &stage{s: s, req: req, started: time.Now()}
	t, id := req.Target, req.Release
	g.log = s.logger().With("target", t.String(), "release", id)

	status(req.Log, "connecting to %s", t)
	sess, out, err := s.open(ctx, t, req.Log, inspectScript(t.root(), true, id+partialSuffix))
	if err != nil {
		return nil, err
	}
	g.sess = sess
	st, err := parseState(out)
	if err != nil {
		return g, err
	}
	g.st = st
	g.res = Result{Release: id, Previous: st.live, Live: st.live, Removed: st.removed}
	for _, r := range st.removed {
		status(req.Log, "removed stale partial release %s", r)
	}
	if g.res.Previous == id {
		// Redeploying the live release: "previous" for a switch back is the
		// newest other complete release.
		g.res.Previous = ""
		for _, r := range st.releases {
			if r.Complete && r.ID != id {
				g.res.Previous = r.ID
				break
			}
		}
	}

	if existing, ok := st.find(id); ok && existing.Complete {
		status(req.Log, "verifying release %s, complete on the target, against the artifacts", id)
		verr := s.verify(ctx, sess, req, id)
		switch {
		case verr == nil:
			g.res.Reused = true
			status(req.Log, "release %s is already on the target; switching without transfer", id)
		case errors.Is(verr, ErrVerify) && req.Fallback != "" && req.Fallback != id:
			status(req.Log, "%v; shipping the artifacts anew as release %s", verr, req.Fallback)
			g.log.Warn("release on the target changed; shipping anew", "err", verr, "fallback", req.Fallback)
			if g.res.Previous == "" && st.live == id {
				g.res.Previous = id
			}
			id, g.req.Release = req.Fallback, req.Fallback
			g.res.Release = id
		default:
			return g, verr
		}
	}
	if !g.res.Reused {
		g.partial = true
		if err := s.transfer(ctx, sess, g.req, st); err != nil {
			return g, err
		}
		status(req.Log, "verifying releases/%s against the artifacts", id+partialSuffix)
		if err := s.verify(ctx, sess, g.req, id+partialSuffix); err != nil {
			return g, err
		}
		if err := sess.run(ctx, s.sealScript(g.req), io.Discard); err != nil {
			return g, fmt.Errorf("seal releases/%s: %w", id+partialSuffix, err)
		}
	}
	g.pruned = prunePlan(st, id, g.res.Previous, g.req.Keep)
	return g, nil
}

// switchLive gives a transferred release its final name and points
// current at it with one rename (Ship's step 5): one short round trip of
// renames, since phase 1 sealed the release. Old releases are pruned
// later, by finish, outside the switch.
func (g *stage) switchLive(ctx context.Context) error {
	id, root := g.req.Release, g.req.Target.root()
	script := "set -e\n"
	if g.partial {
		script += completeScript(root, id)
	}
	script += switchScript(root, id)
	if err := g.sess.run(ctx, script, io.Discard); err != nil {
		return fmt.Errorf("switch current to release %s: %w", id, err)
	}
	g.res.Live = id
	g.res.Switched = true
	status(g.req.Log, "current -> releases/%s", id)
	return nil
}

// activate runs the environment's activate command inside the release
// just switched to; nil when there is none. The error is the command's.
func (g *stage) activate(ctx context.Context) error {
	if g.req.Activate == "" {
		return nil
	}
	status(g.req.Log, "activate: %s", g.req.Activate)
	vars := g.s.activateVars(g.req, g.req.Release, g.req.Commit, g.res.Previous)
	return g.sess.command(ctx, activateScript(g.req.Target.root(), vars, g.req.Activate), g.req.Log)
}

// healthPause is the wait between two attempts of a health command.
const healthPause = time.Second

// health runs command inside the live release until it exits 0, at most
// 1+retries times, each attempt bounded by timeout: on the target by
// timeout(1) where it exists (so that a command that hangs is killed
// there, not only cut off here), and here a little later in any case.
// It returns "" when an attempt passed, else how the last one ended
// ("exit 7 (3 attempts)", "no answer within 30s (3 attempts)").
func (g *stage) health(ctx context.Context, command string, timeout time.Duration, retries int) string {
	secs := max(1, int((timeout+time.Second-1)/time.Second))
	script := "cd " + shell.Quote(g.req.Target.root()+"/current") + " || exit 1\n" +
		"if command -v timeout >/dev/null 2>&1; then exec timeout -k 5 " + strconv.Itoa(secs) + " sh -c " + shell.Quote(command) + "; fi\n" +
		"exec sh -c " + shell.Quote(command) + "\n"
	var last error
	tries := 0
	for tries <= retries {
		if tries > 0 {
			select {
			case <-ctx.Done():
				return fmt.Sprintf("%v (%d attempts)", context.Cause(ctx), tries)
			case <-time.After(healthPause):
			}
		}
		tries++
		status(g.req.Log, "health (attempt %d of %d): %s", tries, retries+1, command)
		actx, cancel := context.WithTimeoutCause(ctx, timeout+10*time.Second, errNoAnswer)
		last = g.sess.command(actx, script, g.req.Log)
		if last != nil && errors.Is(context.Cause(actx), errNoAnswer) {
			last = errNoAnswer
		}
		cancel()
		if last == nil {
			status(g.req.Log, "health passed")
			return ""
		}
		if ctx.Err() != nil {
			break
		}
	}
	attempts := "1 attempt"
	if tries > 1 {
		attempts = fmt.Sprintf("%d attempts", tries)
	}
	var ee *ExitError
	if (errors.As(last, &ee) && ee.Code == 124) || last == errNoAnswer {
		return fmt.Sprintf("no answer within %s (%s)", timeout, attempts)
	}
	return fmt.Sprintf("%s (%s)", describeActivate(last), attempts)
}

var errNoAnswer = errors.New("no answer")

// failure is why a switched target goes back: the sentinel (ErrActivate,
// ErrHealth, ErrOtherHost) and the words after it.
type failure struct {
	sentinel error
	why      string
}

func activateFailure(err error) failure { return failure{ErrActivate, describeActivate(err)} }

// switchBack undoes the switch after f: current goes back to the previous
// release, whose own activate (kept in it) is run again; with no previous
// release, current is removed. The error wraps f's sentinel and says where
// the target was left.
func (g *stage) switchBack(ctx context.Context, f failure) (Result, error) {
	root, id := g.req.Target.root(), g.req.Release
	res := &g.res
	// Undoing must happen even when the deployment's context was cancelled
	// mid-activate: leaving a release live that failed to start is worse.
	undo, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	res.Switched = false
	if res.Previous == "" {
		status(g.req.Log, "%s (%s); there is no previous release, removing current", f.sentinel, f.why)
		if err := g.sess.run(undo, "cd "+shell.Quote(root)+" && rm -f current", io.Discard); err != nil {
			return *res, fmt.Errorf("%w with %s; removing current also failed: %w", f.sentinel, f.why, err)
		}
		res.Live = ""
		return *res, fmt.Errorf("%w with %s; there was no previous release, so current was removed", f.sentinel, f.why)
	}
	prev := res.Previous
	status(g.req.Log, "%s (%s); switching back to release %s", f.sentinel, f.why, prev)
	if err := g.sess.run(undo, switchScript(root, prev), io.Discard); err != nil {
		return *res, fmt.Errorf("%w with %s; switching back to release %s also failed: %w", f.sentinel, f.why, prev, err)
	}
	res.Live = prev
	prevRel, _ := g.st.find(prev)
	vars := g.s.activateVars(g.req, prev, prevRel.Commit, id)
	// Run what went live with that release, not today's command.
	script := "cd " + shell.Quote(root+"/current") + " || exit 1\n" +
		"[ -f " + activateFile + " ] || exit 0\n"
	for _, kv := range vars {
		script += "export " + kv[0] + "=" + shell.Quote(kv[1]) + "\n"
	}
	script += "exec sh ./" + activateFile + "\n"
	status(g.req.Log, "current -> releases/%s; running its activate", prev)
	if err := g.sess.command(undo, script, g.req.Log); err != nil {
		return *res, fmt.Errorf("%w with %s; switched back to release %s, whose activate also failed with %s", f.sentinel, f.why, prev, describeActivate(err))
	}
	return *res, fmt.Errorf("%w with %s; switched back to release %s", f.sentinel, f.why, prev)
}

// finish prunes old releases (never the live one nor the previous one,
// which a switch back needs) and says the release is live.
func (g *stage) finish(ctx context.Context) {
	pruned := g.pruned
	if len(pruned) > 0 {
		if err := g.sess.run(ctx, pruneScript(g.req.Target.root(), pruned), io.Discard); err != nil {
			// The release is live; failing to prune only costs disk.
			status(g.req.Log, "warning: pruning old releases failed: %v", err)
			g.log.Warn("prune", "err", err)
			pruned = nil
		}
	}
	g.res.Pruned = pruned
	for _, p := range pruned {
		status(g.req.Log, "pruned release %s", p)
	}
	status(g.req.Log, "release %s is live (%.1fs)", g.req.Release, time.Since(g.started).Seconds())
	g.log.Info("deployed", "previous", g.res.Previous, "reused", g.res.Reused, "took", time.Since(g.started))
}

// close releases the line to the target; it never touches the target.
func (g *stage) close() {
	if err := g.sess.close(); err != nil {
		g.log.Warn("closing connection", "err", err)
	}
}

// ErrCutOff: a rollout was cut off (the daemon stopped) with some hosts
// switched; they are switched back by recovery.
var ErrCutOff = errors.New("the rollout was cut off")

// Restore switches req.Target back from req.Release to previous and runs
// previous's activate again (kept in it), as a rollout's switch back would
// have; with previous empty, current is removed. It is for a host left on
// a release by a rollout whose daemon died before every host was live.
// The Result's Live says where current points afterwards; the error, never
// nil once the host was switched back, says how it went, in switchBack's
// words after ErrCutOff and why. A host whose current no longer points at
// req.Release is left alone: Live says where it points, and the error is
// nil.
func (s *Shipper) Restore(ctx context.Context, req Request, previous, why string) (Result, error) {
	if req.Log == nil {
		req.Log = io.Discard
	}
	req.Log = &syncWriter{w: req.Log}
	if err := req.Target.Validate(); err != nil {
		return Result{}, fmt.Errorf("switch back: target %s: %w", req.Target, err)
	}
	if err := checkReleaseID(req.Release); err != nil {
		return Result{}, fmt.Errorf("switch back: %w", err)
	}
	sess, out, err := s.open(ctx, req.Target, req.Log, inspectScript(req.Target.root(), false, ""))
	if err != nil {
		return Result{}, err
	}
	g := &stage{s: s, req: req, sess: sess, log: s.logger().With("target", req.Target.String(), "release", req.Release), started: time.Now()}
	defer g.close()
	st, err := parseState(out)
	if err != nil {
		return Result{}, err
	}
	g.st = st
	if st.live != req.Release {
		return Result{Release: req.Release, Live: st.live}, nil
	}
	g.res = Result{Release: req.Release, Live: req.Release, Previous: previous, Switched: true}
	return g.switchBack(ctx, failure{ErrCutOff, why})
}
