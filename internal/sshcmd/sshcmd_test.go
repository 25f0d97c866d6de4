package sshcmd

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

func TestParseTakesFlagsAnywhere(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		rest []string
		f    bool
		n    int
	}{
		{[]string{"12", "-f"}, []string{"12"}, true, 0},
		{[]string{"-f", "12", "--n", "3", "deploy"}, []string{"12", "deploy"}, true, 3},
		{[]string{"a", "b"}, []string{"a", "b"}, false, 0},
		{nil, nil, false, 0},
	} {
		fs := NewFlags("t")
		f := fs.Bool("f", false, "")
		n := fs.Int("n", 0, "")
		rest, err := Parse(fs, c.args)
		if err != nil || !slices.Equal(rest, c.rest) || *f != c.f || *n != c.n {
			t.Errorf("Parse(%q) = %q, %v; -f %v -n %d", c.args, rest, err, *f, *n)
		}
	}
	if _, err := Parse(NewFlags("t"), []string{"x", "--nope"}); err == nil {
		t.Error("an unknown flag was taken")
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("pipe closed") }

func TestWriteJSONAndFail(t *testing.T) {
	t.Parallel()
	var out, errs bytes.Buffer
	if code := WriteJSON(&out, &errs, map[string]int{"a": 1}); code != 0 || out.String() != "{\n  \"a\": 1\n}\n" {
		t.Errorf("WriteJSON = %d, %q", code, out.String())
	}
	if code := WriteJSON(failingWriter{}, &errs, 1); code != 1 || errs.String() != "slipway: pipe closed\n" {
		t.Errorf("WriteJSON to a closed pipe = %d, %q", code, errs.String())
	}
}
