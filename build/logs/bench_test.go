package logs

import (
	"strings"
	"testing"
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
