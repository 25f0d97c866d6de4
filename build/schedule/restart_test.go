package schedule_test

import (
	"strings"
	"testing"

	"slipway/record"
)

// TestShortDowntimeIsStillDowntime: a restart shorter than a minute still
// misses the instants that passed while the daemon was down; with catch_up
// off they are not fired, even for a schedule whose latest instant is always
// less than a minute old. One that passes while the daemon starts is on time.
func TestShortDowntimeIsStillDowntime(t *testing.T) {
	t.Parallel()
	for _, catchUp := range []string{"true", "false"} {
		t.Run("catch_up="+catchUp, func(t *testing.T) {
			e := newAppEnv(t)
			cfg := e.config(appConfig(onMain("often", "@every 10s", "catch_up = "+catchUp)))
			clock := newFakeClock(utc("2025-01-01T00:00:00Z"))
			first := e.start(cfg, clock)
			clock.advanceTo(t, utc("2025-01-01T00:00:10Z"))
			if runs := e.runs("app", "often"); len(runs) != 1 {
				t.Fatalf("before the restart: %d runs, want 1", len(runs))
			}
			e.finish(e.runs("app", "often")[0].ID, record.StatePassed)
			if err := first.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}

			// Down for 25s: 00:00:20 and 00:00:30 pass.
			clock = newFakeClock(utc("2025-01-01T00:00:35Z"))
			e.start(cfg, clock)
			runs := e.runs("app", "often")
			logs := e.log.String()
			if catchUp == "true" {
				if len(runs) != 2 || !e.lastFire("app", "often").Equal(utc("2025-01-01T00:00:30Z")) {
					t.Fatalf("runs = %+v, last fire %s; want one catch-up at 00:00:30", runs, e.lastFire("app", "often"))
				}
				if !strings.Contains(logs, "catching up once") || !strings.Contains(logs, "missed=2") {
					t.Errorf("log does not say it missed 2 runs and caught up once:\n%s", logs)
				}
				return
			}
			if len(runs) != 1 || !e.lastFire("app", "often").Equal(utc("2025-01-01T00:00:10Z")) {
				t.Fatalf("runs = %+v, last fire %s; want none new", runs, e.lastFire("app", "often"))
			}
			if !strings.Contains(logs, "catch_up is off, waiting for the next time") {
				t.Errorf("log does not say it waits:\n%s", logs)
			}
		})
	}
}
