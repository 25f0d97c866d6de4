package configs

import (
	"context"
	"sync/atomic"
	"time"
)

// Source gives the configuration in force now. Services hold a Source, not
// a *Config, so that a reload reaches them; each piece of work (an SSH
// session, a push, a build, a deployment) reads it once when it starts and
// keeps that snapshot to its end. A *Config is a Source that never
// changes; a *Live is the daemon's, which reloads swap.
type Source interface {
	Current() *Config
}

// Current returns c: a Config is the Source of itself.
func (c *Config) Current() *Config { return c }

// Origin says which load produced a configuration.
type Origin struct {
	// Generation counts the configurations a daemon ran on: 1 at start,
	// one more for each reload that applied.
	Generation int
	// Loaded is when the configuration was read.
	Loaded time.Time
	// Reason is what asked for it: "start", "SIGHUP", "ssh reload by
	// alice", "push to slipway-config by alice".
	Reason string
	// File is where it was read from ("embedded default.toml" without
	// --config), Digest the SHA-256 of its bytes, hex.
	File, Digest string
}

// Origin returns the load that produced c (zero for a Config that no
// daemon loaded, such as a test's).
func (c *Config) Origin() Origin { return c.origin }

// Live is the configuration a daemon runs on: a *Config swapped in one
// step by each reload. A Config is never changed once it is in a Live;
// work that started keeps the one it read.
type Live struct{ p atomic.Pointer[Config] }

// NewLive returns a Live holding c, stamped with its origin.
func NewLive(c *Config, o Origin) *Live {
	l := &Live{}
	l.Swap(c, o)
	return l
}

// Current returns the configuration in force.
func (l *Live) Current() *Config { return l.p.Load() }

// Swap puts c in force, stamped with its origin, and returns the one it
// replaces. c must not be changed afterwards.
func (l *Live) Swap(c *Config, o Origin) *Config {
	c.origin = o
	return l.p.Swap(c)
}

type snapshotKey struct{}

// WithSnapshot returns a context that carries cfg, the snapshot of the
// work ctx belongs to (the session a push arrived on, say), so that code
// it calls reads the same configuration.
func WithSnapshot(ctx context.Context, cfg *Config) context.Context {
	return context.WithValue(ctx, snapshotKey{}, cfg)
}

// Snapshot returns the configuration of the work ctx belongs to, or, when
// ctx carries none, src's current one.
func Snapshot(ctx context.Context, src Source) *Config {
	if c, ok := ctx.Value(snapshotKey{}).(*Config); ok && c != nil {
		return c
	}
	return src.Current()
}
