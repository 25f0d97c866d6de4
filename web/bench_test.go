package web

import (
	"fmt"
	"testing"
)

// BenchmarkLineHTML renders typical log lines: plain output, coloured
// output, and Slipway's own.
func BenchmarkLineHTML(b *testing.B) {
	lines := [][]byte{
		[]byte("[01:02.345] │ ok  \tslipway/build/logs\t0.123s\tcoverage: 81.2% of statements"),
		[]byte("[01:02.346] │ \x1b[32m✓\x1b[0m renders the widget (12 ms) \x1b[90m— src/widget.test.ts\x1b[0m"),
		[]byte("[01:02.347] == step 2/3 exited 0 after 1.2s"),
	}
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	b.SetBytes(n / int64(len(lines)))
	var state colourState
	var dst []byte
	for i := 0; b.Loop(); i++ {
		dst = lineHTML(dst[:0], int64(i), lines[i%len(lines)], 0, &state)
	}
	_ = fmt.Sprint(len(dst))
}
