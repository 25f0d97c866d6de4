package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"slipway/configs"
)

// parseSpec parses a schedule spec as the config does. It refuses a zone
// prefix without a spec after it ("CRON_TZ=UTC") itself, because robfig's
// parser slices out of range on that input and panics.
func parseSpec(spec string, loc *time.Location) (cron.Schedule, error) {
	if hasZonePrefix(spec) && !strings.Contains(spec, " ") {
		return nil, fmt.Errorf("invalid cron spec %q: a time zone prefix must be followed by a space and the schedule", spec)
	}
	s, err := configs.ParseCron(spec, loc)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func hasZonePrefix(spec string) bool {
	return strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=")
}

// effectiveSpec is the spec with the zone it runs in made explicit, the way
// configs.ParseCron reads it. It is what the store remembers, so that changing
// the server's default zone counts as changing the schedule.
func effectiveSpec(spec string, loc *time.Location) string {
	if hasZonePrefix(spec) || loc == nil {
		return spec
	}
	return "CRON_TZ=" + loc.String() + " " + spec
}

// zoneOf returns the zone a spec's times are meant in: its CRON_TZ= prefix,
// or the server's default zone.
func zoneOf(spec string, def *time.Location) (*time.Location, error) {
	if !hasZonePrefix(spec) {
		if def == nil {
			return time.Local, nil
		}
		return def, nil
	}
	_, rest, _ := strings.Cut(spec, "=")
	name, _, _ := strings.Cut(rest, " ")
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("zone of cron spec %q: %w", spec, err)
	}
	return loc, nil
}

// allHours is the Hour bit mask of a spec that runs in every hour.
const allHours = 1<<24 - 1

// maxRepeats bounds the instants skipped in one repeated hour: at most one
// per minute of it (specs have no seconds field).
const maxRepeats = 2 * 60

// nextAfter returns the first instant of sched after t, or the zero time when
// there is none.
//
// It differs from sched.Next in one case. On the fall-back night the clock
// shows the same hour twice, and robfig's Next, which walks real time, returns
// a job pinned to that hour ("30 1 * * *" in New York) at both 01:30 EDT and
// 01:30 EST. A team that asked for "at 01:30" means once, so an instant whose
// wall-clock reading is not later than t's is skipped. Specs that run every
// hour ("0 * * * *") are about elapsed time and keep both, as in Vixie cron;
// @every schedules are durations and are never adjusted.
func nextAfter(sched cron.Schedule, t time.Time) time.Time {
	n := sched.Next(t)
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok || spec.Hour&allHours == allHours {
		return n
	}
	ref := wallClock(t, spec.Location)
	for i := 0; i < maxRepeats && !n.IsZero() && !wallClock(n, spec.Location).After(ref); i++ {
		n = sched.Next(n)
	}
	return n
}

// wallClock is what a clock on the wall in loc shows at t, as a UTC time so
// that two readings compare by the digits alone.
func wallClock(t time.Time, loc *time.Location) time.Time {
	if loc != nil && loc != time.Local {
		t = t.In(loc)
	}
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// maxCounted caps how many missed instants are counted for the log; a
// schedule that fires every minute and was down for a year need not be
// walked minute by minute.
const maxCounted = 10000

// errNoInstant means a schedule has no instant in the range asked for.
var errNoInstant = errors.New("no instant")

// missed returns the latest instant of sched in (after, now] and how many
// there are, counting at most maxCounted (more is then true).
func missed(sched cron.Schedule, after, now time.Time) (latest time.Time, n int, more bool, err error) {
	t := after
	for n < maxCounted {
		x := nextAfter(sched, t)
		if x.IsZero() || x.After(now) {
			if n == 0 {
				return time.Time{}, 0, false, errNoInstant
			}
			return latest, n, false, nil
		}
		latest, t = x, x
		n++
	}
	// Too many to walk: find the latest by scanning back from now in
	// windows that double, starting after the last instant counted.
	span := now.Sub(t) // saturates instead of overflowing
	for w := time.Hour; ; w *= 2 {
		from := t
		if w < span/2 {
			from = now.Add(-w)
		}
		if l, ok := lastIn(sched, from, now); ok {
			return l, n, true, nil
		}
		if from.Equal(t) {
			return latest, n, true, nil
		}
	}
}

// lastIn returns the latest instant of sched in (from, now].
func lastIn(sched cron.Schedule, from, now time.Time) (time.Time, bool) {
	var last time.Time
	for t := from; ; {
		x := nextAfter(sched, t)
		if x.IsZero() || x.After(now) {
			return last, !last.IsZero()
		}
		last, t = x, x
	}
}
