package schedule

import (
	"testing"
	"time"
)

// FuzzSpec feeds arbitrary specs through the parser the scheduler uses
// (configs.ParseCron behind parseSpec): it must never panic, and an accepted
// spec must never schedule at or before the instant it is asked about,
// neither through robfig's Next nor through nextAfter, nor as the latest
// missed instant.
func FuzzSpec(f *testing.F) {
	for _, spec := range []string{
		"0 2 * * *", "CRON_TZ=America/New_York 0 2 * * *", "TZ=Europe/Berlin 30 2 * * *",
		"@nightly", "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually",
		"@every 1s", "@every 6h", "@every 0s", "@every -5s", "@every 1ns", "@every",
		"*/15 1 * * *", "0 0 30 2 *", "0 0 31 4 *", "0 0 29 2 *", "59 23 31 12 *",
		"0 0 * * 7", "0 0 1-31/2 * MON-FRI", "1,2,3 * * JAN,feb *", "0 0 ? * *",
		"CRON_TZ=UTC", "TZ=", "CRON_TZ= 0 0 * * *", "CRON_TZ=Nowhere/Else 0 0 * * *",
		"", " ", "* * * * * *", "60 * * * *", "0 24 * * *", "5-1 * * * *", "*/0 * * * *",
		"CRON_TZ=Australia/Lord_Howe 30 2 * * *", "CRON_TZ=Pacific/Apia 0 0 * * *",
	} {
		f.Add(spec, int64(1735689600)) // 2025-01-01T00:00:00Z
	}
	f.Add("CRON_TZ=America/New_York 30 1 * * *", int64(1762056000)) // 2025-11-02 00:00 EDT
	f.Add("CRON_TZ=America/New_York 30 2 * * *", int64(1741496400)) // 2025-03-09 00:00 EST
	f.Add("CRON_TZ=America/Sao_Paulo 0 0 * * *", int64(1541203200)) // the 2018 midnight that did not exist
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string, unix int64) {
		sched, err := parseSpec(spec, berlin)
		if err != nil {
			return
		}
		// The clock of a running daemon: any second from 1970 to 2399.
		const span = 430 * 365 * 24 * 3600
		sec := unix % span
		if sec < 0 {
			sec += span
		}
		at := time.Unix(sec, int64(uint64(unix)%1e9)).UTC()
		n := sched.Next(at)
		if !n.IsZero() && !n.After(at) {
			t.Fatalf("%q: Next(%s) = %s, not after it", spec, at, n)
		}
		m := nextAfter(sched, at)
		if !m.IsZero() && !m.After(at) {
			t.Fatalf("%q: nextAfter(%s) = %s, not after it", spec, at, m)
		}
		if !m.IsZero() && !n.IsZero() && m.Before(n) {
			t.Fatalf("%q: nextAfter(%s) = %s is before robfig's %s", spec, at, m, n)
		}
		if _, err := zoneOf(spec, berlin); err != nil {
			t.Fatalf("%q parsed but its zone did not: %v", spec, err)
		}
		if m.IsZero() {
			return
		}
		latest, k, _, err := missed(sched, at, m.Add(time.Hour))
		if err != nil || k < 1 || latest.Before(m) || latest.After(m.Add(time.Hour)) || !latest.After(at) {
			t.Fatalf("%q: missed(%s, %s) = %s, %d, %v; want an instant in range", spec, at, m.Add(time.Hour), latest, k, err)
		}
	})
}
