package logs

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"slipway/internal/termsafe"
)

// BenchmarkWrite measures the cost of storing build output, with and without
// secrets to mask, against writing the same bytes to a bare file.
func BenchmarkWrite(b *testing.B) {
	chunk := []byte(strings.Repeat("ok  \tslipway/build/pipeline\t0.016s coverage: 91.2% of statements\n", 64))
	for _, bc := range []struct {
		name    string
		secrets []string
	}{
		{"no-secrets", nil},
		{"3-secrets", []string{"ghp_abcdefghijklmnop", "hunter2", "-----BEGIN KEY-----\nAAAABBBBCCCC\n-----END KEY-----"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w, err := NewStore(b.TempDir()).Create("bench", 0, bc.secrets)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				w.Write(chunk)
			}
			b.StopTimer()
			w.Close()
		})
	}
	b.Run("bare-file", func(b *testing.B) {
		f, err := NewStore(b.TempDir()).Create("bench", 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(chunk)))
		for b.Loop() {
			f.f.Write(chunk)
		}
		b.StopTimer()
		f.Close()
	})
}

// BenchmarkFollow reads a finished 10 MiB log as `log ID` and `log ID -f`
// do, shown through the termsafe filter, against `log ID --raw`, which
// copies the stored bytes.
func BenchmarkFollow(b *testing.B) {
	s := NewStore(b.TempDir())
	w, err := s.Create("big", 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	chunk := []byte(strings.Repeat("ok  \tslipway/build/pipeline\t0.016s coverage: 91.2% of statements\n", 60) +
		"\x1b[1m\x1b[31merror\x1b[0m: expected `;`, found `}` — src/main.rs:12:5\n" +
		"  Downloading crates ... 42/120 ✓\r  Downloading crates ... 43/120 ✓\r\n")
	for written := 0; written < 10<<20; written += len(chunk) {
		w.Write(chunk)
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(s.dir, "big.log"))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		out  func() (io.Writer, func() error)
	}{
		{"raw", func() (io.Writer, func() error) { return io.Discard, func() error { return nil } }},
		{"termsafe", func() (io.Writer, func() error) { w := termsafe.NewWriter(io.Discard); return w, w.Close }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(info.Size())
			b.ReportAllocs()
			for b.Loop() {
				out, end := bc.out()
				if err := s.Follow(b.Context(), "big", 0, out, true); err != nil {
					b.Fatal(err)
				}
				if err := end(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
