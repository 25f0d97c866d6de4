package web

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestAPILogIsRawTextByRangeAndOffset: a build's log is its stored bytes
// as plain text a browser will neither sniff nor run (the <script> a step
// printed stays text), by Range (206) or by ?offset for tailing, with the
// size and the build's state to know when to stop.
func TestAPILogIsRawTextByRangeAndOffset(t *testing.T) {
	t.Parallel()
	f := newAPIFixture(t, true)
	r := f.get(t, "", "/api/v1/builds/1/log")
	full := r.body
	if r.code != 200 || !strings.Contains(full, "│ <script>alert(1)</script>\n") || !strings.Contains(full, "\x1b[32mok\x1b[0m") {
		t.Fatalf("log of build 1: %d %q", r.code, full)
	}
	if r.h.Get("X-Slipway-State") != "passed" || r.h.Get("X-Slipway-Log-Size") != strconv.Itoa(len(full)) ||
		!strings.HasPrefix(r.h.Get("Content-Security-Policy"), "sandbox") {
		t.Errorf("log headers: %v", r.h)
	}
	n := len(full)
	for _, c := range []struct {
		hdr, path string
		code      int
		body      string
		rng       string
	}{
		{"bytes=10-", "", 206, full[10:], fmt.Sprintf("bytes 10-%d/%d", n-1, n)},
		{"bytes=0-4", "", 206, full[:5], fmt.Sprintf("bytes 0-4/%d", n)},
		{"bytes=-6", "", 206, full[n-6:], fmt.Sprintf("bytes %d-%d/%d", n-6, n-1, n)},
		{"", "?offset=10", 200, full[10:], ""},
		{"", "?offset=" + strconv.Itoa(n), 200, "", ""},
	} {
		var hdr []string
		if c.hdr != "" {
			hdr = []string{"Range", c.hdr}
		}
		r := f.do(t, http.MethodGet, "dave", "/api/v1/builds/1/log"+c.path, hdr...)
		if r.code != c.code || r.body != c.body || r.h.Get("Content-Range") != c.rng {
			t.Errorf("Range %q %s: %d %q %q, want %d %q %q", c.hdr, c.path, r.code, r.h.Get("Content-Range"), r.body, c.code, c.rng, c.body)
		}
	}
	if r := f.get(t, "dave", fmt.Sprintf("/api/v1/builds/1/log?offset=%d", n+1)); r.code != 416 || r.h.Get("Content-Range") != fmt.Sprintf("bytes */%d", n) {
		t.Errorf("offset past the end: %d %v %s", r.code, r.h, r.body)
	}
	if r := f.do(t, http.MethodGet, "dave", "/api/v1/builds/1/log?offset=3", "Range", "bytes=1-"); r.code != 400 {
		t.Errorf("offset and Range: %d %s", r.code, r.body)
	}
	if r := f.do(t, http.MethodHead, "dave", "/api/v1/builds/1/log"); r.code != 200 || r.body != "" || r.h.Get("Content-Length") != strconv.Itoa(n) {
		t.Errorf("HEAD: %d %v %q", r.code, r.h, r.body)
	}

	// A queued build has no log yet: an empty one, and its state.
	r = f.get(t, "dave", "/api/v1/builds/3/log")
	if r.code != 200 || r.body != "" || r.h.Get("X-Slipway-State") != "queued" || r.h.Get("X-Slipway-Log-Size") != "0" {
		t.Errorf("log of queued build 3: %d %v %q", r.code, r.h, r.body)
	}
	// Tailing a log being written: each answer ends where the log was,
	// the next starts there; nothing is missed or repeated.
	lw, err := f.w.Logs.Create("3", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	offset := 0
	for i := range 5 {
		fmt.Fprintf(lw, "line %d\n", i)
		lw.Flush()
		r := f.get(t, "dave", fmt.Sprintf("/api/v1/builds/3/log?offset=%d", offset))
		size, _ := strconv.Atoi(r.h.Get("X-Slipway-Log-Size"))
		if r.code != 200 || offset+len(r.body) != size {
			t.Fatalf("tail from %d: %d, %d bytes, size %d", offset, r.code, len(r.body), size)
		}
		got.WriteString(r.body)
		offset = size
	}
	lw.Close()
	whole := f.get(t, "dave", "/api/v1/builds/3/log").body
	if got.String() != whole || strings.Count(whole, "│ line ") != 5 {
		t.Errorf("tailed %q\nwhole  %q", got.String(), whole)
	}
	// Deployments' logs the same way.
	if r := f.get(t, "bob", "/api/v1/deployments/1/log"); r.code != 200 || r.body != "" || r.h.Get("X-Slipway-State") != "succeeded" {
		t.Errorf("log of deployment 1 (none kept): %d %v %q", r.code, r.h, r.body)
	}
}

// TestAPILargeLogKeepsMemoryBounded: a 100 MiB log goes to a client
// through a fixed buffer; the daemon's heap does not grow with it.
func TestAPILargeLogKeepsMemoryBounded(t *testing.T) {
	f := newAPIFixture(t, false)
	const size = 100 << 20
	path := filepath.Join(f.w.Dir, "logs", "2.log")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.Repeat([]byte("0123456789abcdef"), 64)
	line[len(line)-1] = '\n'
	for written := 0; written < size; written += len(line) {
		if _, err := file.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := file.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := file.Close(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.s.Handler())
	defer srv.Close()

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/builds/2/log", nil)
	req.Header.Set("X-Test-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	close(done)
	if err != nil || n != fi.Size() {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("served %d MiB; heap in use grew by %.1f MiB at most", n>>20, float64(grew)/(1<<20))
	if grew > 16<<20 {
		t.Errorf("heap in use grew by %d MiB serving a %d MiB log", grew>>20, n>>20)
	}
}
