package web

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"slipway/record"
)

// peakHeapGrowth runs f and returns by how much the live heap grew at
// its highest while f ran, over what it was before. The heap is measured
// by a collection, every 10 ms: what the collection found reachable
// (/gc/heap/live:bytes), what the process holds. Not HeapAlloc after the
// collection: that also counts what the other goroutines allocated since
// it marked, garbage whose amount depends on the scheduler (on a loaded
// machine, 200 busy followers make megabytes of it between the
// collection's end and the reading).
func peakHeapGrowth(f func()) uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	live := func() uint64 {
		runtime.GC()
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	base := live()
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, live())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	if peak < base {
		return 0
	}
	return peak - base
}

// TestHundredMegabyteLogInBoundedMemory: a 100 MB log (four lines of
// 24 MB among short lines in colour and lines of 16 KiB) served as its
// page, the whole page, the raw download, a live stream from its start
// and one resumed near its end: the heap never grows by more than a few
// MB, and each answer has all of the log it should. (Long lines are the
// worst case for memory: a renderer holds one line, and any number of
// short ones costs what one does; it is also what keeps this test fast
// under -race. BenchmarkLogPage times a log of many short lines.)
func TestHundredMegabyteLogInBoundedMemory(t *testing.T) {
	// Not parallel: the heap is the process's.
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	// The log is written as logs.Writer stores one, straight to its file:
	// 100 MB through the Writer's masking would take seconds under -race.
	setup := time.Now()
	f, err := os.Create(filepath.Join(runs.dir, "1.log"))
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(f)
	fmt.Fprintln(out, "[00:00.000] == log opened at 2026-01-01 00:00:00 UTC; times are elapsed since then")
	long := strings.Repeat("0123456789abcdef", 1<<10) // 16 KiB
	huge := strings.Repeat("x", 24<<20)               // cut to 16 KiB on the pages
	const rounds = 4
	for i := range rounds {
		for j := range 500 {
			fmt.Fprintf(out, "[00:01.%03d] │ \x1b[1mbold line\x1b[22m %d\n", j%1000, j)
		}
		for range 50 {
			fmt.Fprintf(out, "[00:02.000] │ %s\n", long)
		}
		fmt.Fprintf(out, "[00:03.000] │ %s\n", huge)
		if i == 0 {
			fmt.Fprint(out, "[00:04.000] │ \x1b[35mmagenta from here on\n")
		}
	}
	fmt.Fprintln(out, "[00:05.000] == build passed")
	if err := out.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	runs.set(record.Build{ID: 1, Repo: "pub", State: record.StatePassed})
	t.Logf("wrote the log in %v", time.Since(setup).Round(time.Millisecond))
	const lines = 1 + rounds*(500+50+1) + 1 + 1 // header, rounds, the magenta line, the result

	fetch := func(path string, header ...string) (int64, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+path, nil)
		if len(header) == 2 {
			req.Header.Set(header[0], header[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// Keep the answer's end, to check it is complete.
		var end tailBuffer
		n, err := io.Copy(&end, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return n, string(end.b)
	}
	const budget = 16 << 20
	for _, c := range []struct {
		path, header, value string
		check               func(n int64, end string) bool
	}{
		{"/builds/1/log.txt", "", "", func(n int64, _ string) bool { return n > 100e6 }},
		{"/builds/1/log", "", "", func(n int64, end string) bool {
			return strings.Contains(end, "</html>") && strings.Contains(end, `<span class="term-fg35">xxxxxxxx`) && n < 8<<20
		}},
		{"/builds/1/log?lines=all", "", "", func(n int64, end string) bool {
			return strings.Contains(end, fmt.Sprintf(`id="L%d"`, lines)) && strings.Contains(end, "</html>") && n > 3<<20
		}},
		{"/builds/1/log/events", "", "", func(n int64, end string) bool {
			return strings.Contains(end, fmt.Sprintf(`id="L%d"`, lines)) && strings.Contains(end, "event: end")
		}},
		{"/builds/1/log/events", "Last-Event-ID", fmt.Sprint(lines - 3), func(n int64, end string) bool {
			return n < 64<<10 && strings.Contains(end, fmt.Sprintf(`id="L%d"`, lines-2)) && strings.Contains(end, "event: end")
		}},
	} {
		var n int64
		var end string
		start := time.Now()
		grew := peakHeapGrowth(func() {
			if c.header != "" {
				n, end = fetch(c.path, c.header, c.value)
			} else {
				n, end = fetch(c.path)
			}
		})
		t.Logf("GET %s %s: %d bytes in %v, heap grew by %.1f MB at most", c.path, c.value, n, time.Since(start).Round(time.Millisecond), float64(grew)/(1<<20))
		if !c.check(n, end) {
			t.Errorf("GET %s %s: %d bytes, ending\n%s", c.path, c.value, n, end)
		}
		if grew > budget {
			t.Errorf("GET %s %s: the heap grew by %.1f MB, more than %d MB", c.path, c.value, float64(grew)/(1<<20), budget>>20)
		}
	}
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct{ b []byte }

func (tb *tailBuffer) Write(p []byte) (int, error) {
	tb.b = append(tb.b, p...)
	if len(tb.b) > 64<<10 {
		tb.b = append(tb.b[:0], tb.b[len(tb.b)-64<<10:]...)
	}
	return len(p), nil
}

// TestTwoHundredFollowers: 200 followers of one live log each get every
// line, and the live heap grows by less than 20 MB while they follow,
// whether they keep up with the log's hub or keep falling behind it (a
// queue of one event: each is dropped again and again, and reads what it
// missed from the file, the costly case a loaded machine makes). The
// followers are bare HTTP/1.0 clients (a goroutine and a 4 KiB buffer
// each), so that what is measured is the server's side.
func TestTwoHundredFollowers(t *testing.T) {
	// Not parallel: the heap is the process's.
	for _, c := range []struct {
		name  string
		queue int
	}{{"keeping up", 0}, {"falling behind", 1}} {
		t.Run(c.name, func(t *testing.T) { twoHundredFollowers(t, c.queue) })
	}
}

func twoHundredFollowers(t *testing.T, queue int) {
	const followers, lines = 200, 2000
	runs := newTestRuns(t)
	s := newLiveServer(t, Options{BuildLogs: runs})
	if queue > 0 {
		s.hubQueue = queue
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	w := runs.start(t, 9, "pub")
	fmt.Fprintln(w, "\x1b[33mwarming up")

	type result struct {
		last int64
		end  bool
		err  error
	}
	results := make(chan result, followers)
	var connected sync.WaitGroup
	connected.Add(followers)
	grew := peakHeapGrowth(func() {
		for range followers {
			go func() {
				last, end, err := rawFollow(srv.Listener.Addr().String(), "/builds/9/log/events", connected.Done)
				results <- result{last, end, err}
			}()
		}
		connected.Wait()
		for i := range lines {
			fmt.Fprintf(w, "line %d of the build, as long as a line of a test's output usually is\n", i)
			if i%100 == 0 {
				time.Sleep(5 * time.Millisecond)
			}
		}
		runs.finish(t, 9, w, record.StatePassed)
		for range followers {
			r := <-results
			if r.err != nil || !r.end || r.last != lines+3 {
				t.Errorf("a follower got to line %d of %d (end %v, %v)", r.last, lines+3, r.end, r.err)
			}
		}
	})
	t.Logf("%d followers of %d lines: the heap grew by %.1f MB at most", followers, lines, float64(grew)/(1<<20))
	if grew > 20<<20 {
		t.Errorf("the heap grew by %.1f MB with %d followers, more than 20 MB", float64(grew)/(1<<20), followers)
	}
}

// rawFollow follows a live log as an HTTP/1.0 client with a 4 KiB
// buffer (the answer is then the bare event stream, not chunked), calls
// connected once the answer's headers came, and returns the last line's
// id and whether the end event came.
func rawFollow(addr, path string, connected func()) (last int64, end bool, err error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		connected()
		return 0, false, err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, addr)
	r := bufio.NewReaderSize(c, 4<<10)
	headers := true
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			continue // a long data line: not what is counted
		}
		if err == io.EOF {
			return last, end, nil
		}
		if err != nil {
			return last, end, err
		}
		switch {
		case headers && string(line) == "\r\n":
			headers = false
			connected()
		case bytes.HasPrefix(line, []byte("id: ")):
			last, _ = strconv.ParseInt(string(bytes.TrimSpace(line[4:])), 10, 64)
		case bytes.HasPrefix(line, []byte("event: end")):
			end = true
		}
	}
}
