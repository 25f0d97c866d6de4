package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"slipway/configs"
	"slipway/record"
)

// Rollout says how a release goes out to the hosts of an environment.
type Rollout struct {
	// Parallel is how many hosts are prepared (transfer and verify) at
	// once; 0 means configs.DefaultParallel.
	Parallel int
	// Batch is how many hosts are switched together; 0 means all.
	Batch int
	// Health, when set, is run inside the live release on every host of a
	// batch once the batch is switched and activated; each attempt is
	// bounded by HealthTimeout (0: configs.DefaultHealthTimeout) and a failed one
	// is tried again HealthRetries times.
	Health        string
	HealthTimeout time.Duration
	HealthRetries int
}

// HostOutcome is where one host of a rollout stands; Roll reports each
// change of it.
type HostOutcome struct {
	Pos      int    // the host's place in the rollout, from 0
	Target   Target // the host
	State    record.HostState
	Release  string // the release shipped to it
	Previous string // the release live on it before ("" none or not known yet)
	Detail   string // one line: why it failed or went back
}

// RollResult is how a rollout ended: the deployment's state and reason,
// and every host's outcome.
type RollResult struct {
	State   record.DeployState
	Reason  string
	Release string // the release shipped (the first host's; see HostOutcome for each)
	Hosts   []HostOutcome
}

// Roll ships reqs (one per host of an environment, the same release and
// artifacts) in two phases:
//
//  1. prepare every host, at most ro.Parallel at once: connect, transfer
//     with hard links against that host's live release, verify against
//     the artifacts. If any host fails, nothing is switched anywhere: the
//     rollout fails naming the hosts and reasons (their partial releases
//     are removed by the next deployment).
//  2. switch the hosts in batches of ro.Batch: complete the release,
//     rename current, run activate, then the health command on each host
//     of the batch. If a switch, an activate or a health check fails,
//     every host switched so far goes back to its previous release (and
//     runs that release's activate again), the later batches are never
//     switched, and the rollout is rolled back.
//
// Old releases are pruned on each host as it goes live, never its previous
// release, which a switch back needs. report, when not
// nil, is called (from several goroutines, one call at a time) with each
// host's new state before the step that depends on it goes on. With one
// host Roll does what Ship does, in the same words, plus the health check.
func (s *Shipper) Roll(ctx context.Context, reqs []Request, ro Rollout, report func(HostOutcome)) RollResult {
	r := &roll{s: s, ro: ro, hosts: make([]HostOutcome, len(reqs)), stages: make([]*stage, len(reqs)), report: report}
	if r.ro.Parallel <= 0 {
		r.ro.Parallel = configs.DefaultParallel
	}
	if r.ro.Batch <= 0 || r.ro.Batch > len(reqs) {
		r.ro.Batch = len(reqs)
	}
	if r.ro.HealthTimeout <= 0 {
		r.ro.HealthTimeout = configs.DefaultHealthTimeout
	}
	many := len(reqs) > 1
	if len(reqs) > 0 {
		r.log = &syncWriter{w: orDiscard(reqs[0].Log)}
	}
	reqs = slices.Clone(reqs) // each host's log is set below; the caller's stay
	for i, req := range reqs {
		if many {
			req.Log = newHostLog("["+req.Target.String()+"] ", r.log)
		}
		reqs[i] = req
		r.hosts[i] = HostOutcome{Pos: i, Target: req.Target, State: record.HostPending, Release: req.Release}
	}
	defer r.closeAll()
	if len(reqs) == 0 {
		return RollResult{State: record.DeployFailed, Reason: "the environment has no hosts"}
	}
	if many {
		status(r.log, "release %s to %d hosts: transfer to all (%d at once), then switch %s", reqs[0].Release, len(reqs), min(r.ro.Parallel, len(reqs)), r.batchWords())
	}

	if res, ok := r.prepareAll(ctx, reqs); !ok {
		return res
	}
	for from := 0; from < len(reqs); from += r.ro.Batch {
		batch := r.stages[from:min(from+r.ro.Batch, len(reqs))]
		if res, ok := r.switchBatch(ctx, from, batch); !ok {
			return res
		}
	}
	// Every batch passed: the release is live everywhere; pruning old
	// releases comes after, outside the switch.
	r.each(0, r.stages, func(i int, g *stage) {
		r.set(i, func(h *HostOutcome) { h.State = record.HostLive; h.Release = g.res.Release })
		g.finish(ctx)
	})
	release := r.stages[0].res.Release
	reason := fmt.Sprintf("release %s is live", release)
	if many {
		reason += fmt.Sprintf(" on all %d hosts", len(reqs))
	}
	return r.result(record.DeploySucceeded, reason)
}

// roll is one Roll's state.
type roll struct {
	s      *Shipper
	ro     Rollout
	stages []*stage
	report func(HostOutcome)
	log    *syncWriter // the deployment's log, for lines about every host

	mu    sync.Mutex // guards hosts and report's calls
	hosts []HostOutcome
}

func (r *roll) batchWords() string {
	if r.ro.Batch >= len(r.hosts) {
		return "all together"
	}
	return fmt.Sprintf("%d at a time", r.ro.Batch)
}

// set changes host i's outcome and reports it.
func (r *roll) set(i int, change func(*HostOutcome)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.hosts[i])
	if r.report != nil {
		r.report(r.hosts[i])
	}
}

func (r *roll) result(st record.DeployState, reason string) RollResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := RollResult{State: st, Reason: reason, Hosts: slices.Clone(r.hosts)}
	if len(r.hosts) > 0 {
		res.Release = r.hosts[0].Release
	}
	return res
}

// each runs f on every stage of gs, whose first is r.stages[from], at
// once and waits for all; f gets each stage's index in r.stages.
func (r *roll) each(from int, gs []*stage, f func(i int, g *stage)) {
	var wg sync.WaitGroup
	for k, g := range gs {
		if g == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(from+k, g)
		}()
	}
	wg.Wait()
}

func (r *roll) closeAll() {
	for _, g := range r.stages {
		if g != nil {
			g.close()
		}
	}
}

// prepareAll is phase 1. It reports false, with the rollout's result, when
// a host failed: then nothing was switched anywhere.
func (r *roll) prepareAll(ctx context.Context, reqs []Request) (RollResult, bool) {
	errs := make([]error, len(reqs))
	sem := make(chan struct{}, r.ro.Parallel)
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = context.Cause(ctx)
				r.set(i, func(h *HostOutcome) { h.State = record.HostFailed; h.Detail = oneLine(errs[i].Error()) })
				return
			}
			defer func() { <-sem }()
			g, err := r.s.prepare(ctx, req)
			r.mu.Lock()
			r.stages[i] = g
			r.mu.Unlock()
			errs[i] = err
			r.set(i, func(h *HostOutcome) {
				if g != nil {
					h.Previous, h.Release = g.res.Previous, g.res.Release
				}
				if err != nil {
					h.State, h.Detail = record.HostFailed, oneLine(err.Error())
				} else {
					h.State = record.HostPrepared
				}
			})
		}()
	}
	wg.Wait()
	var failed []string
	for i, err := range errs {
		if err != nil {
			failed = append(failed, r.name(i)+err.Error())
		}
	}
	if len(failed) == 0 {
		return RollResult{}, true
	}
	if len(reqs) == 1 {
		return r.result(record.DeployFailed, errs[0].Error()), false
	}
	for i, err := range errs {
		if err == nil {
			r.set(i, func(h *HostOutcome) {
				h.State, h.Detail = record.HostSkipped, "transferred, not switched: another host failed before the switch"
			})
		}
	}
	status(r.log, "%d of %d hosts failed before the switch; nothing was switched", len(failed), len(reqs))
	return r.result(record.DeployFailed, fmt.Sprintf("nothing was switched: %d of %d hosts failed before the switch: %s",
		len(failed), len(reqs), strings.Join(failed, "; "))), false
}

// name is how host i is named in a reason: nothing with one host.
func (r *roll) name(i int) string {
	if len(r.hosts) == 1 {
		return ""
	}
	return r.hosts[i].Target.String() + ": "
}

// switchBatch is phase 2 for one batch, whose first host is r.stages[from].
// On a failure it switches back every host switched so far and reports
// false with the rollout's result.
func (r *roll) switchBatch(ctx context.Context, from int, batch []*stage) (RollResult, bool) {
	fails := make([]failure, len(r.stages))
	var mu sync.Mutex
	failedAt := func(i int, f failure) {
		mu.Lock()
		fails[i] = f
		mu.Unlock()
		r.set(i, func(h *HostOutcome) {
			h.State, h.Detail = record.HostFailed, oneLine(fmt.Sprintf("%s with %s", f.sentinel, f.why))
		})
	}
	r.each(from, batch, func(i int, g *stage) {
		if err := g.switchLive(ctx); err != nil {
			failedAt(i, failure{errSwitch, err.Error()})
			return
		}
		r.set(i, func(h *HostOutcome) { h.State = record.HostSwitched })
		if err := g.activate(ctx); err != nil {
			failedAt(i, activateFailure(err))
		}
	})
	if r.ro.Health != "" && !slices.ContainsFunc(fails, func(f failure) bool { return f.sentinel != nil }) {
		r.each(from, batch, func(i int, g *stage) {
			if why := g.health(ctx, r.ro.Health, r.ro.HealthTimeout, r.ro.HealthRetries); why != "" {
				failedAt(i, failure{ErrHealth, why})
			}
		})
	}
	first := slices.IndexFunc(fails, func(f failure) bool { return f.sentinel != nil })
	if first < 0 {
		return RollResult{}, true
	}
	return r.rollBack(ctx, from+len(batch), fails, first), false
}

// errSwitch is the sentinel of a host whose switch itself failed.
var errSwitch = errors.New("switch failed")

// rollBack switches back every host switched so far after fails (indexed
// like r.stages; first is the first failed host), marks the hosts after
// upTo as never switched, and returns the rollout's result.
func (r *roll) rollBack(ctx context.Context, upTo int, fails []failure, first int) RollResult {
	cause := fmt.Sprintf("%s%s with %s", r.name(first), fails[first].sentinel, fails[first].why)
	if len(r.stages) == 1 {
		return r.rollBackOne(ctx, fails[0])
	}
	status(r.log, "%s; switching back every host switched so far", cause)
	var mu sync.Mutex
	var split []string
	r.each(0, r.stages[:upTo], func(i int, g *stage) {
		f := fails[i]
		if f.sentinel == errSwitch || !g.res.Switched {
			// Its switch failed: current was left as it was (the rename
			// is the switch).
			return
		}
		if f.sentinel == nil {
			f = failure{ErrOtherHost, cause}
		}
		res, err := g.switchBack(ctx, f)
		back := res.Previous != "" && res.Live == res.Previous
		r.set(i, func(h *HostOutcome) {
			if back {
				h.State = record.HostRolledBack
			} else {
				h.State = record.HostFailed
			}
			h.Detail = oneLine(err.Error())
		})
		if !back {
			mu.Lock()
			split = append(split, fmt.Sprintf("%s: %v", g.req.Target, err))
			mu.Unlock()
		}
	})
	for i := upTo; i < len(r.stages); i++ {
		r.set(i, func(h *HostOutcome) { h.State, h.Detail = record.HostSkipped, "never switched: "+cause })
	}
	if len(split) > 0 {
		slices.Sort(split)
		return r.result(record.DeployFailed, fmt.Sprintf("%s; the environment is split: %s", cause, strings.Join(split, "; ")))
	}
	return r.result(record.DeployRolledBack, fmt.Sprintf("%s; every host switched is back on its previous release", cause))
}

// rollBackOne is rollBack for an environment of one host, in Ship's words.
func (r *roll) rollBackOne(ctx context.Context, f failure) RollResult {
	g := r.stages[0]
	if f.sentinel == errSwitch {
		return r.result(record.DeployFailed, f.why)
	}
	res, err := g.switchBack(ctx, f)
	back := res.Previous != "" && res.Live == res.Previous
	st := record.DeployFailed
	r.set(0, func(h *HostOutcome) {
		h.State, h.Detail = record.HostFailed, oneLine(err.Error())
		if back {
			h.State = record.HostRolledBack
		}
	})
	if back {
		st = record.DeployRolledBack
	}
	return r.result(st, err.Error())
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// hostLog is one host's view of a deployment log shared by many hosts: its
// lines of Slipway's own (Printf) and its programs' output lines (Write,
// cut into whole lines) start with the host's label, so that interleaved
// hosts stay readable.
type hostLog struct {
	label string
	w     *syncWriter
	mu    sync.Mutex
	out   lines
}

func newHostLog(label string, w *syncWriter) *hostLog {
	h := &hostLog{label: label, w: w}
	// A line that never ends is let out in 64 KiB pieces.
	h.out = lines{max: 64 << 10, emit: func(l []byte) {
		_, _ = h.w.Write(append([]byte(h.label), l...))
	}}
	return h
}

func (h *hostLog) Printf(format string, args ...any) {
	h.w.Printf("%s", h.label+fmt.Sprintf(format, args...))
}

func (h *hostLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.out.write(p)
	return len(p), nil
}
