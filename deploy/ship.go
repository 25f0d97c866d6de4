package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slipway/internal/shell"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sentinel errors a caller (the deploy queue, the hook that streams to the
// pusher) can branch on with errors.Is. Messages built on them are one
// sentence meant for people.
var (
	ErrUnreachable = errors.New("target unreachable")
	ErrHostKey     = errors.New("host key verification failed")
	ErrAuth        = errors.New("deploy key refused")
	ErrTransfer    = errors.New("rsync failed")
	ErrInterrupted = errors.New("rsync interrupted")
	ErrActivate    = errors.New("activate failed")
	// ErrHealth: a host's health command failed after the switch.
	ErrHealth = errors.New("health check failed")
	// ErrOtherHost: this host was switched back because another host of
	// its environment failed.
	ErrOtherHost = errors.New("another host failed")
	// ErrVerify: the release on the target does not hold exactly the
	// artifacts shipped; current was left alone.
	ErrVerify = errors.New("release does not match the artifacts")
)

// DefaultKeep is how many releases a target keeps when the config is silent.
const DefaultKeep = 5

// Shipper ships artifact folders to targets as releases. The zero value is
// ready to use. A Shipper is safe for concurrent use, but deployments to one
// target must be serialised by the caller (one deployment at a time per
// environment): two at once would race on `current` and on pruning.
type Shipper struct {
	Logger *slog.Logger // nil discards

	SSH   string // ssh client; "" means "ssh" on PATH
	Rsync string // rsync; "" means "rsync" on PATH

	// ConnectTimeout bounds connecting to a target (default 10s);
	// AliveInterval is ssh's keepalive (default 5s, three misses drop the
	// connection), so a target that vanishes mid-transfer fails the
	// deployment in bounded time instead of hanging it.
	ConnectTimeout time.Duration
	AliveInterval  time.Duration

	Now func() time.Time // for the completion marker; nil means time.Now
}

func (s *Shipper) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Shipper) sshPath() string   { return orDefault(s.SSH, "ssh") }
func (s *Shipper) rsyncPath() string { return orDefault(s.Rsync, "rsync") }

func (s *Shipper) connectTimeout() time.Duration {
	if s.ConnectTimeout > 0 {
		return s.ConnectTimeout
	}
	return 10 * time.Second
}

func (s *Shipper) aliveInterval() time.Duration {
	if s.AliveInterval > 0 {
		return s.AliveInterval
	}
	return 5 * time.Second
}

func (s *Shipper) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// Request is one deployment of an artifact folder to a target.
type Request struct {
	Target  Target
	Source  string // local folder whose contents become the release
	Release string // release id: one path element, unique per deployment or reused on purpose
	// Fallback is the release id to ship into instead when Release is
	// complete on the target but no longer holds exactly Source (someone
	// changed a file there). Empty: such a deployment fails.
	Fallback string
	// Digest identifies Source's artifact set; it is written into the
	// release's marker so the target says which bytes it holds.
	Digest string

	// Recorded in the release's marker and given to activate as SLIPWAY_*.
	Repo, Env, Commit string

	// Activate is run with sh on the target inside the new release after the
	// switch. Empty means nothing to run.
	Activate string
	// Vars are extra environment variables for Activate (names like FOO_BAR).
	Vars map[string]string

	Keep int // releases kept on the target; 0 means DefaultKeep
	// Log gets everything rsync, ssh and activate print, and the shipper's
	// own lines ("==> current -> releases/..."), with Log's Printf when it
	// has one (a build/logs Writer: lines no program can forge); nil
	// discards.
	Log io.Writer
}

// Result says what a deployment did.
type Result struct {
	Release  string   // the release shipped: Request.Release, or its Fallback
	Live     string   // the release `current` points at now
	Previous string   // the release that was live before; "" on a first deployment
	Reused   bool     // the release was already complete on the target: nothing was transferred
	Switched bool     // current was switched to the new release (and stayed there)
	Pruned   []string // releases removed by pruning
	Removed  []string // stale partial releases removed before the transfer
}

var varName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (r *Request) validate() error {
	if err := r.Target.Validate(); err != nil {
		return fmt.Errorf("target %s: %w", r.Target, err)
	}
	if err := checkReleaseID(r.Release); err != nil {
		return err
	}
	if r.Fallback != "" {
		if err := checkReleaseID(r.Fallback); err != nil {
			return err
		}
	}
	if hasControl(r.Digest) || strings.ContainsAny(r.Digest, " =") {
		return fmt.Errorf("digest %q is not a digest", r.Digest)
	}
	for _, v := range []string{r.Repo, r.Env, r.Commit} {
		if hasControl(v) {
			return fmt.Errorf("repo, env and commit must not contain control characters: %q", v)
		}
	}
	for k := range r.Vars {
		if !varName.MatchString(k) {
			return fmt.Errorf("activate variable %q is not a valid name", k)
		}
	}
	if r.Keep < 0 {
		return fmt.Errorf("keep %d: must be at least 1", r.Keep)
	}
	fi, err := os.Stat(r.Source)
	if err != nil {
		return fmt.Errorf("artifact folder: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("artifact folder %s is not a folder", r.Source)
	}
	return nil
}

// Ship deploys req.Source as release req.Release:
//
//  1. connect once, remove stale partial releases, learn which release is live;
//  2. rsync into releases/<id>.partial, hard-linking files whose content is
//     unchanged against the live release (--link-dest), so only changes travel;
//  3. verify the release against Source: an rsync dry run with --checksum
//     that must find nothing to change (content, size, mode, links, extra
//     or missing files); a difference fails the deployment with ErrVerify;
//  4. seal the partial folder: write the activate file and the completion
//     marker into it (steps 1 to 4 are phase 1: nothing is live yet);
//  5. rename the folder to releases/<id> and switch `current` with one
//     rename of a new relative symlink over it, in one round trip;
//  6. run Activate in the new release; if it fails, switch back to the
//     previous release, run the activate that went live with that one, and
//     return an error saying so;
//  7. prune beyond Keep, never the live release nor the one before it.
//
// Any failure before step 5 leaves `current` exactly as it was. A retry with
// the same release id resumes the transfer from the partial folder; if the
// release is already complete on the target and still verifies, it is
// switched to without a transfer (fast rollback); if it no longer verifies,
// Source is shipped anew into Fallback. The returned error is one sentence for people
// and wraps one of the Err* sentinels where one applies.
func (s *Shipper) Ship(ctx context.Context, req Request) (Result, error) {
	g, err := s.prepare(ctx, req)
	if g == nil {
		return Result{}, err
	}
	defer g.close()
	if err != nil {
		return g.res, err
	}
	if err := g.switchLive(ctx); err != nil {
		return g.res, err
	}
	if aerr := g.activate(ctx); aerr != nil {
		return g.switchBack(ctx, activateFailure(aerr))
	}
	g.finish(ctx)
	return g.res, nil
}

// transfer copies the artifacts into releases/<id>.partial.
func (s *Shipper) transfer(ctx context.Context, sess session, req Request, st state) error {
	root := req.Target.root()
	args := []string{
		// -a without -t, plus --checksum: every build writes its artifacts
		// anew, so modification times always differ; comparing content is
		// what lets an unchanged file become a hard link to the previous
		// release (rsync only links files whose kept attributes match).
		"-rlpgoD", "--checksum",
		// --delete only matters when resuming into a partial folder left by
		// an interrupted attempt: files no longer in the source go.
		"--delete",
		"--exclude=/" + markerFile, "--exclude=/" + activateFile,
	}
	base := st.live
	if base == "" {
		for _, r := range st.releases {
			if r.Complete {
				base = r.ID
				break
			}
		}
	}
	if base != "" && base != req.Release {
		args = append(args, "--link-dest="+root+"/releases/"+base)
	}
	status(req.Log, "rsync to releases/%s (linking unchanged files to %s)", req.Release+partialSuffix, orDefault(base, "nothing"))
	src := strings.TrimSuffix(req.Source, "/") + "/"
	dst := root + "/releases/" + req.Release + partialSuffix + "/"
	return sess.rsync(ctx, args, src, dst, nil)
}

// verify checks that releases/<dir> on the target holds exactly the
// artifacts: an rsync dry run over the whole release, comparing content
// by checksum, lists anything it would change. Slipway's marker and
// activate files are left out; ownership and times are not compared (a
// deploy user need not own what it ships as root does). The error wraps
// ErrVerify and names the first differences.
func (s *Shipper) verify(ctx context.Context, sess session, req Request, dir string) error {
	args := []string{
		"-rlpgoD", "--checksum", "--delete", "--dry-run", "--out-format=%i %n",
		"--exclude=/" + markerFile, "--exclude=/" + activateFile,
	}
	src := strings.TrimSuffix(req.Source, "/") + "/"
	dst := req.Target.root() + "/releases/" + dir + "/"
	var out bytes.Buffer
	if err := sess.rsync(ctx, args, src, dst, &out); err != nil {
		return fmt.Errorf("verify release %s: %w", strings.TrimSuffix(dir, partialSuffix), err)
	}
	diff := differences(out.String())
	if len(diff) == 0 {
		return nil
	}
	for _, d := range diff {
		status(req.Log, "differs: %s", d)
	}
	more := ""
	if len(diff) > 3 {
		diff, more = diff[:3], fmt.Sprintf(" and %d more", len(diff)-3)
	}
	return fmt.Errorf("%w: release %s on the target differs (%s%s)", ErrVerify, strings.TrimSuffix(dir, partialSuffix), strings.Join(diff, "; "), more)
}

// differences reads rsync's itemized dry run ("%i %n" lines, see
// rsync(1) --itemize-changes) and describes every item whose content, size,
// type, permissions or link target differs, or that is missing or extra.
// Differences in times, owner, group, ACLs and extended attributes are not
// counted.
func differences(out string) []string {
	var diff []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if name, ok := strings.CutPrefix(l, "*deleting"); ok {
			diff = append(diff, strings.TrimSpace(name)+" is not in the artifacts")
			continue
		}
		code, name, ok := strings.Cut(l, " ")
		if !ok || len(code) < 9 {
			diff = append(diff, "unexpected rsync output "+strconv.Quote(l))
			continue
		}
		switch {
		case code[0] == 'c' || code[0] == '>' || code[0] == '<' || code[0] == 'h':
			if strings.Contains(code[2:], "+") {
				diff = append(diff, name+" is missing")
			} else {
				diff = append(diff, name+" differs")
			}
		case code[0] == '.' && (code[2] == 'c' || code[3] == 's'):
			diff = append(diff, name+" differs")
		case code[0] == '.' && code[5] == 'p':
			diff = append(diff, name+" has other permissions")
		}
	}
	return diff
}

// sealScript makes the verified partial folder ready to go live, in
// phase 1 so that the switch is only renames: the activate file and the
// marker (written last, via rename) go into releases/<id>.partial, and a
// marker-less releases/<id>, which can only be debris, is removed. A
// .partial folder counts as incomplete whatever it holds, so a sealed one
// left behind by a deployment that never switched is still removed by the
// next one. The marker and activate files are removed before writing
// because they could be hard links shared with another release.
func (s *Shipper) sealScript(req Request) string {
	part := "releases/" + req.Release + partialSuffix
	marker := []string{
		"id=" + req.Release,
		"commit=" + req.Commit,
		"repo=" + req.Repo,
		"env=" + req.Env,
		"time=" + s.now().UTC().Format(time.RFC3339Nano),
	}
	if req.Digest != "" {
		marker = append(marker, "digest="+req.Digest)
	}
	var b strings.Builder
	b.WriteString("set -e\ncd " + shell.Quote(req.Target.root()) + "\n")
	b.WriteString("p=" + shell.Quote(part) + "\n")
	b.WriteString(`rm -f "$p/` + markerFile + `" "$p/` + markerFile + `.tmp" "$p/` + activateFile + `"` + "\n")
	if req.Activate != "" {
		b.WriteString(`printf '%s\n' ` + shell.Quote(req.Activate) + ` > "$p/` + activateFile + `"` + "\n")
	}
	b.WriteString(`printf '%s\n'`)
	for _, l := range marker {
		b.WriteString(" " + shell.Quote(l))
	}
	b.WriteString(` > "$p/` + markerFile + `.tmp"` + "\n")
	b.WriteString(`mv "$p/` + markerFile + `.tmp" "$p/` + markerFile + `"` + "\n")
	final := shell.Quote("releases/" + req.Release)
	b.WriteString("if [ -e " + final + " ] || [ -L " + final + " ]; then rm -rf -- " + final + "; fi\n")
	return b.String()
}

// completeScript gives the sealed partial folder its final name: the
// moment the release becomes complete. mv -T never moves it into a folder
// of that name that appeared since sealing; it fails instead.
func completeScript(root, id string) string {
	return "cd " + shell.Quote(root) + "\n" +
		"mv -T " + shell.Quote("releases/"+id+partialSuffix) + " " + shell.Quote("releases/"+id) + "\n"
}

// switchScript points current at releases/<id> with a single rename, so a
// reader of current sees the old release or the new one, never neither.
func switchScript(root, id string) string {
	tmp := shell.Quote("current.tmp-" + id)
	return "cd " + shell.Quote(root) + "\n" +
		"ln -sfn " + shell.Quote("releases/"+id) + " " + tmp + "\n" +
		"mv -T " + tmp + " current\n"
}

func activateScript(root string, vars [][2]string, command string) string {
	var b strings.Builder
	b.WriteString("cd " + shell.Quote(root+"/current") + " || exit 1\n")
	for _, kv := range vars {
		b.WriteString("export " + kv[0] + "=" + shell.Quote(kv[1]) + "\n")
	}
	b.WriteString("exec sh -c " + shell.Quote(command) + "\n")
	return b.String()
}

func (s *Shipper) activateVars(req Request, id, commit, previous string) [][2]string {
	vars := make([][2]string, 0, len(req.Vars)+5)
	keys := make([]string, 0, len(req.Vars))
	for k := range req.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vars = append(vars, [2]string{k, req.Vars[k]})
	}
	// Slipway's own variables win over same-named Vars.
	return append(vars,
		[2]string{"SLIPWAY_RELEASE", id},
		[2]string{"SLIPWAY_COMMIT", commit},
		[2]string{"SLIPWAY_ENV", req.Env},
		[2]string{"SLIPWAY_REPO", req.Repo},
		[2]string{"SLIPWAY_PREVIOUS_RELEASE", previous},
	)
}

// Reactivate runs again, inside release req.Release on req.Target, the
// activate command that went live with it (kept in the release), provided
// current still points at that release; a release without one has nothing
// to run. previous is given to the command as SLIPWAY_PREVIOUS_RELEASE.
// It is for a deployment whose daemon died after the switch, during
// activate: the release is live, whether activate finished is unknown.
// Nothing is switched, whatever the command does.
func (s *Shipper) Reactivate(ctx context.Context, req Request, previous string) error {
	if req.Log == nil {
		req.Log = io.Discard
	}
	req.Log = &syncWriter{w: req.Log}
	if err := req.Target.Validate(); err != nil {
		return fmt.Errorf("activate again: target %s: %w", req.Target, err)
	}
	if err := checkReleaseID(req.Release); err != nil {
		return fmt.Errorf("activate again: %w", err)
	}
	root := req.Target.root()
	sess, _, err := s.open(ctx, req.Target, req.Log, "true")
	if err != nil {
		return err
	}
	defer func() {
		if err := sess.close(); err != nil {
			s.logger().Warn("closing connection", "target", req.Target.String(), "err", err)
		}
	}()
	var b strings.Builder
	b.WriteString("cd " + shell.Quote(root) + " || exit 1\n")
	b.WriteString(`[ "$(readlink current)" = ` + shell.Quote("releases/"+req.Release) + ` ] || { echo "current no longer points at releases/"` + shell.Quote(req.Release) + ` >&2; exit 1; }` + "\n")
	b.WriteString("cd current || exit 1\n")
	b.WriteString("[ -f " + activateFile + " ] || exit 0\n")
	for _, kv := range s.activateVars(req, req.Release, req.Commit, previous) {
		b.WriteString("export " + kv[0] + "=" + shell.Quote(kv[1]) + "\n")
	}
	b.WriteString("exec sh ./" + activateFile + "\n")
	if err := sess.command(ctx, b.String(), req.Log); err != nil {
		return fmt.Errorf("%w with %s", ErrActivate, describeActivate(err))
	}
	return nil
}

func describeActivate(err error) string {
	var ee *ExitError
	if errors.As(err, &ee) {
		return fmt.Sprintf("exit %d", ee.Code)
	}
	if errors.Is(err, ErrInterrupted) {
		// The transport words every cancelled command as ErrInterrupted
		// ("rsync interrupted"); activate is not rsync.
		return "an interruption (" + strings.TrimPrefix(err.Error(), ErrInterrupted.Error()+": ") + ")"
	}
	return err.Error()
}

// prunePlan picks the complete releases to delete once id is live: beyond
// the newest keep, never id, never previous (the rollback target).
func prunePlan(st state, id, previous string, keep int) []string {
	protected := map[string]bool{id: true}
	if previous != "" {
		protected[previous] = true
	}
	kept := len(protected)
	var drop []string
	for _, r := range st.releases { // newest first
		if !r.Complete || protected[r.ID] {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		drop = append(drop, r.ID)
	}
	return drop
}

func pruneScript(root string, ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("cd " + shell.Quote(root+"/releases") + " && rm -rf --")
	for _, id := range ids {
		b.WriteString(" " + shell.Quote(id))
	}
	b.WriteString("\n")
	return b.String()
}

// syncWriter serialises writes to the caller's log.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// printer is a log that keeps lines of Slipway's own apart from what
// programs print (a build/logs Writer: its Printf lines carry no output
// mark, so an activate script cannot print one).
type printer interface {
	Printf(format string, args ...any)
}

// Printf writes a line of the shipper's own: with the log's Printf when it
// has one, else as text.
func (s *syncWriter) Printf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.w.(printer); ok {
		p.Printf(format, args...)
		return
	}
	fmt.Fprintf(s.w, format+"\n", args...)
}

// status writes a line of the shipper's own to log ("==> current ->
// releases/..."); see syncWriter.Printf.
func status(log io.Writer, format string, args ...any) {
	if p, ok := log.(printer); ok {
		p.Printf("==> "+format, args...)
		return
	}
	fmt.Fprintf(log, "==> "+format+"\n", args...)
}
