package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"slipway/record"
)

// Plan is what one part asks a push to record, with what the pusher should
// be told about the refs it leaves alone.
type Plan struct {
	Builds      []record.Build
	Verified    []record.VerifiedBuild
	Deployments []record.Deployment
	// Notes are lines for the pusher (refs not built, and why).
	Notes []string
	// Settle, if not nil, is called once the record was made (err nil: rec
	// holds what was recorded, for every part) or could not be (err not
	// nil); the part starts its work, or gives back what it claimed while
	// planning. It must not block on the pusher.
	Settle func(ctx context.Context, rec record.Enqueued, err error)
}

// Part is one contributor to the way of a push. Plan must not change
// anything that Settle does not finish or undo. Report writes to out what
// the pusher should see of the part's recorded work (and, when the push
// asked for it, streams that work until it ends); it returns when ctx ends
// (the pusher went away), and the work goes on without it. Both are called
// concurrently for different pushes.
type Part interface {
	Plan(ctx context.Context, p record.Push) (Plan, error)
	Report(ctx context.Context, p record.Push, plan Plan, rec record.Enqueued, out io.Writer)
}

// Store records a push with everything its parts planned, in one
// transaction.
type Store interface {
	RecordVerifiedPush(ctx context.Context, p record.Push, bs []record.Build, ds []record.Deployment, vs []record.VerifiedBuild) (record.Enqueued, error)
}

// Options configures a Handler. Store is required.
type Options struct {
	Store  Store
	Parts  []Part       // planned, settled and reported in this order
	Logger *slog.Logger // nil discards
	// Ledger is needed by reconciliation (Reconcile, FinishOpen,
	// RecordDrift, Watch) only.
	Ledger Ledger
	// Metrics counts the pushes recorded; nil counts nothing.
	Metrics Metrics
}

// Metrics counts pushes for /metrics (package metrics provides it).
type Metrics interface {
	// PushRecorded counts a push to repo whose record was made.
	PushRecorded(repo string)
}

// Handler records accepted pushes and reports them.
type Handler struct {
	o   Options
	log *slog.Logger
}

// New checks the options.
func New(o Options) (*Handler, error) {
	if o.Store == nil {
		return nil, errors.New("new push handler: Store is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{o: o, log: log}, nil
}

// RecordPush records p (its refs already moved by git) with the work every
// part plans for it, in one transaction, and sets that work going. When
// p.ID is set, p is the open push of that id, which this records. It
// returns the push's id and report, which tells the pusher about the work
// and, when asked, streams it. A part that cannot plan does not stop the
// record: git has moved the refs, and the push must be recorded whatever
// else fails; the pusher is told what could not be queued.
func (h *Handler) RecordPush(ctx context.Context, p record.Push) (int64, func(context.Context, io.Writer), error) {
	plans := make([]Plan, len(h.o.Parts))
	var (
		bs []record.Build
		ds []record.Deployment
		vs []record.VerifiedBuild
	)
	for i, part := range h.o.Parts {
		plan, err := part.Plan(ctx, p)
		if err != nil {
			h.log.Error("plan the work of a push", "part", fmt.Sprintf("%T", part), "repo", p.Repo, "err", err)
			plan = Plan{Notes: []string{fmt.Sprintf("slipway: could not queue all the work of this push: %v", err)}}
		}
		plans[i] = plan
		bs = append(bs, plan.Builds...)
		ds = append(ds, plan.Deployments...)
		vs = append(vs, plan.Verified...)
	}
	rec, err := h.o.Store.RecordVerifiedPush(ctx, p, bs, ds, vs)
	for _, plan := range plans {
		if plan.Settle != nil {
			plan.Settle(ctx, rec, err)
		}
	}
	if err != nil {
		return 0, nil, err
	}
	p.ID = rec.PushID
	if h.o.Metrics != nil {
		h.o.Metrics.PushRecorded(p.Repo)
	}
	report := func(ctx context.Context, out io.Writer) {
		for i, part := range h.o.Parts {
			part.Report(ctx, p, plans[i], rec, out)
		}
	}
	return rec.PushID, report, nil
}
