package schedule

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"slipway/configs"
)

// Reload makes the schedules of cfg the Scheduler's, in one step as far as
// the timer loop, RunNow and List can tell:
//
//   - a schedule whose effective spec (the spec in its zone), branches,
//     pipeline, catch_up and only_if_changed are unchanged keeps its place:
//     a reload neither fires a nightly again nor makes it skip a night;
//   - a schedule that is new, or whose effective spec changed, starts fresh
//     from now, as it would at a restart;
//   - a schedule whose other settings changed keeps its timing, and its next
//     firing uses the new settings;
//   - a schedule that left cfg is forgotten in the store and its queued runs
//     are cancelled.
//
// A firing in flight finishes on the schedules it started with, and Reload
// waits for it (a removed schedule is forgotten only after its last firing
// was recorded, so nothing records it again). When Reload returns nil the
// timer loop is waiting on the new schedules' times, so a schedule changed
// to "@every 2s" fires two seconds later, not at the next minute. Should ctx
// end while the loop is still busy with a firing, Reload returns anyway and
// the loop takes the new schedules up when that firing ends.
//
// Before Start, Reload only replaces the schedules; Start then reconciles
// them with the store. After Shutdown it returns ErrStopped. A spec cfg
// cannot parse (configs validation refuses those, so this is a caller's
// bug) is an error naming the schedule, and nothing changes. An error of the
// store while forgetting removed schedules is returned too, but the new
// schedules are in force by then; what was left is forgotten at the next
// reload or start.
func (s *Scheduler) Reload(ctx context.Context, cfg *configs.Config) error {
	if cfg == nil {
		return errors.New("reload schedules: no configuration")
	}
	next, err := newSet(cfg, s.clock.Now())
	if err != nil {
		return fmt.Errorf("reload schedules: %w", err)
	}
	if err := s.lockFirings(ctx); err != nil {
		return fmt.Errorf("reload schedules: %w", err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			s.fireMu.Unlock()
		}
	}
	defer unlock()

	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return fmt.Errorf("reload schedules: %w", ErrStopped)
	}
	started := s.started
	prev := s.set
	if started {
		s.carryOver(prev, next)
	}
	s.set = next
	s.gen++
	gen := s.gen
	close(s.swapped)
	s.swapped = make(chan struct{})
	loopDone := s.loopDone
	if started {
		s.inflight.Add(1) // the store work below; Shutdown waits for it
	}
	s.mu.Unlock()
	if !started {
		s.log.Info("schedules replaced before start", "schedules", len(next.list))
		return nil
	}
	defer s.inflight.Done()

	sctx, cancel := s.guard(ctx)
	var gone []*entry
	for _, e := range prev.list {
		if next.byKey[e.key()] == nil {
			gone = append(gone, e)
		}
	}
	ferr := s.forgetRemoved(sctx, next, gone)
	cancel()
	unlock()
	s.waitArmed(ctx, gen, loopDone)
	s.log.Info("schedules reloaded", "schedules", len(next.list), "removed", len(gone))
	if ferr != nil {
		return fmt.Errorf("reload schedules: the new schedules are in force, but forgetting removed ones failed: %w", ferr)
	}
	return nil
}

// carryOver gives each schedule of next the place of the same schedule in
// prev, unless it is new or its timing changed, and logs what changed. The
// caller holds mu (for ref and next) and fireMu (no firing moves them
// meanwhile).
func (s *Scheduler) carryOver(prev, next *set) {
	for i, e := range next.list {
		old := prev.byKey[e.key()]
		switch {
		case old == nil:
			s.log.Info("schedule added by reload; starting fresh", "schedule", e.key(),
				"spec", e.spec, "next", fmtTime(e.next, e.loc))
		case old.effective != e.effective:
			s.log.Info("schedule spec changed by reload; starting fresh", "schedule", e.key(),
				"was", old.effective, "spec", e.effective, "next", fmtTime(e.next, e.loc))
		default:
			changed := changedSettings(old, e)
			if len(changed) == 0 {
				// The same entry, so the loop's view of it is untouched.
				next.list[i], next.byKey[e.key()] = old, old
				continue
			}
			e.ref, e.next = old.ref, old.next
			s.log.Info("schedule changed by reload; keeping its timing", "schedule", e.key(),
				"changed", changed, "next", fmtTime(e.next, e.loc))
		}
	}
}

// changedSettings names the settings of a schedule with the same effective
// spec that differ between a and b.
func changedSettings(a, b *entry) []string {
	var out []string
	if a.spec != b.spec {
		out = append(out, "cron") // the same instants, written differently
	}
	if !slices.Equal(a.branches, b.branches) {
		out = append(out, "branch")
	}
	if a.pipeline != b.pipeline {
		out = append(out, "pipeline")
	}
	if a.catchUp != b.catchUp {
		out = append(out, "catch_up")
	}
	if a.onlyIfChanged != b.onlyIfChanged {
		out = append(out, "only_if_changed")
	}
	return out
}

// lockFirings takes fireMu for writing, waiting for the firings in flight,
// or returns ctx's error without it.
func (s *Scheduler) lockFirings(ctx context.Context) error {
	if s.fireMu.TryLock() {
		return nil
	}
	got := make(chan struct{})
	go func() {
		s.fireMu.Lock()
		close(got)
	}()
	select {
	case <-got:
		return nil
	case <-ctx.Done():
		// Nobody wants the lock any more; give it back once it comes.
		go func() {
			<-got
			s.fireMu.Unlock()
		}()
		return fmt.Errorf("wait for the firing in flight: %w", context.Cause(ctx))
	}
}

// waitArmed waits until the timer loop waits on times computed from
// generation gen of the schedules, or has ended, or ctx is done.
func (s *Scheduler) waitArmed(ctx context.Context, gen uint64, loopDone <-chan struct{}) {
	for {
		s.mu.Lock()
		armed, ch := s.armed, s.armedCh
		s.mu.Unlock()
		if armed >= gen {
			return
		}
		select {
		case <-ch:
		case <-loopDone:
			return
		case <-ctx.Done():
			return
		}
	}
}
