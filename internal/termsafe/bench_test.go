package termsafe

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// benchLog is 1 MiB of what builds print: test results, compiler lines
// with colours, UTF-8, a progress bar with carriage returns.
var benchLog = func() []byte {
	lines := strings.Repeat("ok  \tslipway/build/pipeline\t0.016s coverage: 91.2% of statements\n", 10) +
		"\x1b[1m\x1b[31merror\x1b[0m: expected `;`, found `}` — src/main.rs:12:5\n" +
		"  Downloading crates ... 42/120 ✓\r  Downloading crates ... 43/120 ✓\r\n"
	return bytes.Repeat([]byte(lines), 1<<20/len(lines))
}()

// BenchmarkWriter renders build output as `log` and `log -f` do, in the
// 32 KiB reads of the log store, against copying it unchanged.
func BenchmarkWriter(b *testing.B) {
	for _, bc := range []struct {
		name string
		w    func(io.Writer) io.Writer
	}{
		{"copy", func(w io.Writer) io.Writer { return w }},
		{"termsafe", func(w io.Writer) io.Writer { return NewWriter(w) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := bc.w(io.Discard)
			b.SetBytes(int64(len(benchLog)))
			b.ReportAllocs()
			for b.Loop() {
				for p := benchLog; len(p) > 0; {
					k := min(len(p), 32<<10)
					w.Write(p[:k])
					p = p[k:]
				}
			}
		})
	}
}

// BenchmarkLine is a listing's cell: a step's command text.
func BenchmarkLine(b *testing.B) {
	for name, s := range map[string]string{"plain": "go test -race ./...", "escaped": "printf '\x1b[31mred\x1b[0m\\n'"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Line(s)
			}
		})
	}
}
