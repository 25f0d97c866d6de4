package schedule

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustParse(t *testing.T, spec string) cron.Schedule {
	t.Helper()
	s, err := parseSpec(spec, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fires lists the instants of spec in (from, to].
func fires(t *testing.T, spec string, from, to time.Time) []time.Time {
	t.Helper()
	s := mustParse(t, spec)
	var out []time.Time
	for x := nextAfter(s, from); !x.IsZero() && !x.After(to); x = nextAfter(s, x) {
		out = append(out, x.UTC())
	}
	return out
}

func TestNextAfterOnTheFallBackNight(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2025, 11, 1, 12, 0, 0, 0, ny)
	to := time.Date(2025, 11, 2, 12, 0, 0, 0, ny)
	for _, tc := range []struct {
		spec string
		want int
	}{
		// Pinned to the repeated hour: once per wall-clock time.
		{"CRON_TZ=America/New_York 30 1 * * *", 1},
		{"CRON_TZ=America/New_York */15 1 * * *", 4},
		// Every hour is elapsed time: the repeated hour runs twice, so
		// the 24 hours from noon to midnight plus 00:00-12:00 (13 wall
		// hours, one of them twice) make 25 instants.
		{"CRON_TZ=America/New_York 0 * * * *", 25},
		{"@every 1h", 25},
	} {
		if got := fires(t, tc.spec, from, to); len(got) != tc.want {
			t.Errorf("%s fires %d times from %s to %s, want %d: %v", tc.spec, len(got), from, to, tc.want, got)
		}
	}
	// robfig's own Next fires the 01:30 job twice that night (EDT, then
	// EST an hour later); nextAfter is what keeps it to one.
	s := mustParse(t, "CRON_TZ=America/New_York 30 1 * * *")
	first := s.Next(from)
	if again := s.Next(first); again.Sub(first) != time.Hour {
		t.Errorf("robfig's Next no longer repeats the hour (%s then %s): revisit nextAfter", first, again)
	}
}

func TestMissed(t *testing.T) {
	t.Parallel()
	daily := mustParse(t, "0 2 * * *")
	last := time.Date(2025, 1, 1, 2, 0, 0, 0, time.UTC)
	latest, n, more, err := missed(daily, last, time.Date(2025, 1, 4, 10, 0, 0, 0, time.UTC))
	if err != nil || n != 3 || more || !latest.Equal(time.Date(2025, 1, 4, 2, 0, 0, 0, time.UTC)) {
		t.Errorf("daily over three nights: latest %s, n %d, more %v, err %v", latest, n, more, err)
	}
	if _, _, _, err := missed(daily, last, last.Add(time.Hour)); err == nil {
		t.Error("missed reports an instant where there is none")
	}

	// A year down with a schedule every minute: counted up to the cap,
	// and the latest instant is still exact.
	minutely := mustParse(t, "* * * * *")
	now := time.Date(2026, 1, 1, 12, 34, 56, 0, time.UTC)
	latest, n, more, err = missed(minutely, last, now)
	if err != nil || n != maxCounted || !more || !latest.Equal(time.Date(2026, 1, 1, 12, 34, 0, 0, time.UTC)) {
		t.Errorf("minutely over a year: latest %s, n %d, more %v, err %v", latest, n, more, err)
	}

	// @every 1s over a day down: 86400 instants, counted up to the cap,
	// the latest exact.
	everySecond := mustParse(t, "@every 1s")
	latest, _, more, err = missed(everySecond, last, last.Add(24*time.Hour+500*time.Millisecond))
	if err != nil || !more || !latest.Equal(last.Add(24*time.Hour)) {
		t.Errorf("every second over a day: latest %s, more %v, err %v", latest, more, err)
	}
}

func TestParseSpecRefusesABareZone(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"CRON_TZ=UTC", "TZ=Europe/Berlin", "CRON_TZ="} {
		if _, err := parseSpec(spec, time.UTC); err == nil {
			t.Errorf("parseSpec(%q) accepted a zone without a schedule", spec)
		}
	}
}

func TestEffectiveSpecAndZone(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got := effectiveSpec("0 2 * * *", berlin); got != "CRON_TZ=Europe/Berlin 0 2 * * *" {
		t.Errorf("effectiveSpec = %q", got)
	}
	if got := effectiveSpec("TZ=UTC 0 2 * * *", berlin); got != "TZ=UTC 0 2 * * *" {
		t.Errorf("effectiveSpec with a prefix = %q", got)
	}
	for spec, want := range map[string]string{
		"0 2 * * *":                          "Europe/Berlin",
		"CRON_TZ=America/New_York 0 2 * * *": "America/New_York",
		"TZ=Asia/Tokyo @every 1h":            "Asia/Tokyo",
		"CRON_TZ=America/New_York @nightly":  "America/New_York",
	} {
		loc, err := zoneOf(spec, berlin)
		if err != nil || loc.String() != want {
			t.Errorf("zoneOf(%q) = %v, %v; want %s", spec, loc, err, want)
		}
	}
}
