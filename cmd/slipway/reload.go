package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"slipway/configs"
)

// reloader re-reads the configuration and puts it in force, one reload at
// a time: validated whole first (the checks of `slipway config check`),
// then swapped in one step, then followed by what the new configuration
// asks of the running daemon (applied). A configuration that fails
// validation changes nothing.
type reloader struct {
	path   string // empty: the embedded default
	loader configs.Loader
	live   *configs.Live
	log    *slog.Logger
	// applied runs after each swap: repositories made, revoked
	// connections closed, schedules changed. It returns lines for whoever
	// asked for the reload.
	applied func(ctx context.Context, old, new *configs.Config) []string

	mu  sync.Mutex  // one reload at a time
	low lowPriority // the thread parses run on
}

// reloadResult is what one reload did.
type reloadResult struct {
	Origin  configs.Origin   // of the configuration in force afterwards
	Err     error            // why nothing was applied (a *configs.ValidationError lists every problem)
	Restart []configs.Change // settings left as they run until a restart
	Lines   []string         // what changed
	Took    time.Duration
}

// origin describes the configuration read at start.
func (r *reloader) origin(data []byte) configs.Origin {
	return configs.Origin{Generation: 1, Loaded: time.Now(), Reason: "start", File: r.name(), Digest: digest(data)}
}

func (r *reloader) name() string {
	if r.path == "" {
		return "embedded default.toml"
	}
	return r.path
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// read returns the configuration's bytes as they are now.
func (r *reloader) read() ([]byte, error) {
	if r.path == "" {
		return configs.DefaultTOML(), nil
	}
	data, err := os.ReadFile(r.path)
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	return data, nil
}

// parse validates data as the configuration file and makes its paths
// absolute, as at start.
func (r *reloader) parse(data []byte) (*configs.Config, error) {
	type parsed struct {
		cfg *configs.Config
		err error
	}
	p := atLowPriority(&r.low, func() parsed {
		cfg, err := r.loader.Parse(data, r.name())
		return parsed{cfg, err}
	})
	cfg, err := p.cfg, p.err
	if err != nil {
		return nil, err
	}
	if err := absolutePaths(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Reload re-reads the configuration file and applies it (see apply).
func (r *reloader) Reload(ctx context.Context, reason string) reloadResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	data, err := r.read()
	if err != nil {
		return r.refused(reason, err, start)
	}
	return r.apply(ctx, data, reason, start)
}

// apply validates data and, when it passes, puts it in force. r.mu is
// held.
func (r *reloader) apply(ctx context.Context, data []byte, reason string, start time.Time) reloadResult {
	next, err := r.parse(data)
	if err != nil {
		return r.refused(reason, err, start)
	}
	running := r.live.Current()
	restart := configs.KeepRestartSettings(running, next)
	res := reloadResult{Restart: restart, Lines: []string{configs.Summary(running, next)}}
	o := running.Origin()
	res.Origin = configs.Origin{Generation: o.Generation + 1, Loaded: time.Now(), Reason: reason, File: r.name(), Digest: digest(data)}
	r.live.Swap(next, res.Origin)
	if r.applied != nil {
		res.Lines = append(res.Lines, r.applied(ctx, running, next)...)
	}
	res.Took = time.Since(start)
	attrs := []any{"generation", res.Origin.Generation, "reason", reason, "file", r.name(), "took", res.Took, "changes", strings.Join(res.Lines, "; ")}
	for _, c := range restart {
		r.log.Warn("configuration reload: this setting needs a restart; it keeps its running value", "setting", c.Key, "running", c.Old, "file", c.New)
	}
	r.log.Info("configuration reloaded", attrs...)
	return res
}

func (r *reloader) refused(reason string, err error, start time.Time) reloadResult {
	res := reloadResult{Origin: r.live.Current().Origin(), Err: err, Took: time.Since(start)}
	var ve *configs.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			r.log.Error("configuration reload refused", "reason", reason, "problem", p.String())
		}
	} else {
		r.log.Error("configuration reload refused", "reason", reason, "err", err)
	}
	r.log.Warn("still running the configuration loaded before", "generation", res.Origin.Generation, "loaded", res.Origin.Loaded.Format(time.RFC3339), "by", res.Origin.Reason)
	return res
}

// Print writes the result for the person who asked for the reload.
func (res reloadResult) Print(w io.Writer) {
	o := res.Origin
	if res.Err != nil {
		var ve *configs.ValidationError
		if errors.As(res.Err, &ve) {
			for _, p := range ve.Problems {
				fmt.Fprintln(w, p)
			}
			fmt.Fprintf(w, "slipway: reload refused: %s in the configuration; nothing changed\n", plural(len(ve.Problems), "problem"))
		} else {
			fmt.Fprintf(w, "slipway: reload refused: %v; nothing changed\n", res.Err)
		}
		fmt.Fprintf(w, "slipway: still running configuration %d (%s, %s)\n", o.Generation, o.Reason, o.Loaded.Format(time.RFC3339))
		return
	}
	fmt.Fprintf(w, "slipway: configuration %d in force (%s, from %s, in %s)\n", o.Generation, o.Reason, o.File, res.Took.Round(10*time.Microsecond))
	for _, l := range res.Lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	for _, c := range res.Restart {
		fmt.Fprintf(w, "  needs a restart: %s (running on %s until then)\n", c, c.Old)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// Debounce windows of SIGHUP: a burst of signals is one reload, made once
// the signals have been quiet for hupQuiet, and at most hupMaxDelay after
// the first of them.
const (
	hupQuiet    = 200 * time.Millisecond
	hupMaxDelay = time.Second
)

// onSignals reloads after each burst of signals on sig until ctx ends.
func (r *reloader) onSignals(ctx context.Context, sig <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
		}
		deadline := time.NewTimer(hupMaxDelay)
		quiet := time.NewTimer(hupQuiet)
	burst:
		for {
			select {
			case <-ctx.Done():
				deadline.Stop()
				quiet.Stop()
				return
			case <-sig:
				quiet.Reset(hupQuiet)
			case <-quiet.C:
				break burst
			case <-deadline.C:
				break burst
			}
		}
		deadline.Stop()
		quiet.Stop()
		r.Reload(ctx, "SIGHUP")
	}
}
