package push

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"slipway/internal/gitrev"
	"slipway/record"
)

// Ledger is what reconciliation reads and settles of the record: the pushes
// git's reference-transaction hook opened and nobody finished, and the last
// recorded value of every ref.
type Ledger interface {
	OpenPushes(ctx context.Context) ([]record.OpenPush, error)
	RecordedRefs(ctx context.Context, repo string) (map[string]string, error)
	DeletePush(ctx context.Context, id int64) error
}

// Disk is the repositories as git has them.
type Disk interface {
	Repos(ctx context.Context) ([]string, error)
	Refs(ctx context.Context, repo string) (map[string]string, error)
}

// Reconcile brings the record level with the repositories before the daemon
// serves: it finishes every open push (FinishOpen) and records the refs that
// moved without a record (RecordDrift). No push may be in flight.
func (h *Handler) Reconcile(ctx context.Context, disk Disk) error {
	if _, err := h.FinishOpen(ctx, disk, time.Now()); err != nil {
		return err
	}
	_, err := h.RecordDrift(ctx, disk)
	return err
}

// FinishOpen finishes the open pushes opened before before: a daemon that
// died, or could not record a push's work, between git's reference
// transaction and post-receive leaves them. The updates git made (the ref
// holds the new value) are recorded with the work they ask for, like any
// push; a push git made none of is withdrawn. It returns how many pushes it
// recorded.
func (h *Handler) FinishOpen(ctx context.Context, disk Disk, before time.Time) (int, error) {
	if h.o.Ledger == nil {
		return 0, errors.New("finish open pushes: the handler has no Ledger")
	}
	open, err := h.o.Ledger.OpenPushes(ctx)
	if err != nil {
		return 0, fmt.Errorf("finish open pushes: %w", err)
	}
	refs := map[string]map[string]string{} // per repo, read once
	n := 0
	for _, o := range open {
		if !o.Time.Before(before) {
			continue // in flight: its post-receive finishes it
		}
		on, ok := refs[o.Repo]
		if !ok {
			if on, err = disk.Refs(ctx, o.Repo); err != nil {
				return n, fmt.Errorf("finish open push %d: %w", o.ID, err)
			}
			refs[o.Repo] = on
		}
		p := o.Push
		p.Refs = made(append(slices.Clone(o.Refs), o.Prepared...), on)
		if len(p.Refs) == 0 {
			if err := h.o.Ledger.DeletePush(ctx, o.ID); err != nil {
				return n, fmt.Errorf("withdraw open push %d: %w", o.ID, err)
			}
			h.log.Info("withdrew a push git did not make", "push", o.ID, "repo", o.Repo, "user", o.User)
			continue
		}
		if _, _, err := h.RecordPush(ctx, p); err != nil {
			return n, fmt.Errorf("finish open push %d: %w", o.ID, err)
		}
		n++
		h.log.Warn("recorded a push whose record was left open (the daemon stopped or failed before post-receive)",
			"push", o.ID, "repo", o.Repo, "user", o.User, "refs", len(p.Refs))
	}
	return n, nil
}

// made returns the updates of us that the refs on disk show were made, the
// last of each ref only.
func made(us []record.RefUpdate, on map[string]string) []record.RefUpdate {
	var out []record.RefUpdate
	seen := map[string]bool{}
	for i := len(us) - 1; i >= 0; i-- {
		u := us[i]
		if seen[u.Name] {
			continue
		}
		seen[u.Name] = true
		id, exists := on[u.Name]
		if record.ZeroID(u.New) && !exists || id == u.New {
			out = append(out, u)
		}
	}
	slices.Reverse(out)
	return out
}

// RecordDrift compares every repository's refs with their recorded values
// and records the differences as one push per repository "found at start"
// (no user: nobody's rights or release gate were asked), with the builds
// it asks for: refs moved by hand on the server's disk, or by a git whose
// hooks did not run. Release refs found this way are not deployed. It
// returns how many pushes it recorded. No push may be in flight.
func (h *Handler) RecordDrift(ctx context.Context, disk Disk) (int, error) {
	if h.o.Ledger == nil {
		return 0, errors.New("record drift: the handler has no Ledger")
	}
	repos, err := disk.Repos(ctx)
	if err != nil {
		return 0, fmt.Errorf("record drift: %w", err)
	}
	n := 0
	for _, repo := range repos {
		on, err := disk.Refs(ctx, repo)
		if err != nil {
			return n, fmt.Errorf("record drift: %w", err)
		}
		rec, err := h.o.Ledger.RecordedRefs(ctx, repo)
		if err != nil {
			return n, fmt.Errorf("record drift: %w", err)
		}
		us := drift(rec, on)
		if len(us) == 0 {
			continue
		}
		id, _, err := h.RecordPush(ctx, record.Push{Repo: repo, Refs: us, Time: time.Now().UTC()})
		if err != nil {
			return n, fmt.Errorf("record the refs of %q that moved without a record: %w", repo, err)
		}
		n++
		h.log.Warn("refs moved without a record; recorded them as a push found at start", "push", id, "repo", repo, "refs", refList(us))
	}
	return n, nil
}

// drift returns the updates that take the recorded refs rec to the refs on
// disk, sorted by name. The refs the daemon writes itself (the notes ref,
// written with hooks off) are no push's and are left out.
func drift(rec, on map[string]string) []record.RefUpdate {
	var us []record.RefUpdate
	for name, id := range on {
		if gitrev.DaemonOwned(name) {
			continue
		}
		if old, ok := rec[name]; !ok {
			us = append(us, record.RefUpdate{Name: name, Old: zero(id), New: id})
		} else if old != id {
			us = append(us, record.RefUpdate{Name: name, Old: old, New: id})
		}
	}
	for name, old := range rec {
		if _, ok := on[name]; !ok && !gitrev.DaemonOwned(name) {
			us = append(us, record.RefUpdate{Name: name, Old: old, New: zero(old)})
		}
	}
	slices.SortFunc(us, func(a, b record.RefUpdate) int { return strings.Compare(a.Name, b.Name) })
	return us
}

// zero is the all-zero id of id's hash.
func zero(id string) string { return strings.Repeat("0", len(id)) }

func refList(us []record.RefUpdate) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Name
	}
	return strings.Join(names, " ")
}

// Watch finishes, every period until ctx ends, the open pushes older than
// age: a push whose work could not be recorded in post-receive (a full
// disk, a busy database) gets its builds as soon as the record can be
// written, without a restart.
func (h *Handler) Watch(ctx context.Context, disk Disk, period, age time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := h.FinishOpen(ctx, disk, time.Now().Add(-age)); err != nil && ctx.Err() == nil {
			h.log.Error("finish open pushes", "err", err)
		}
	}
}
