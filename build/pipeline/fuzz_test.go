package pipeline

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		example,
		"",
		"[build]\nsteps = [\"a\"]\ntimeout = \"1ns\"\nartifacts = [\"./x/../y\", \".\"]\n",
		"[build]\nsteps = [\"a\"]\nenv = { A = 1, B = true, C = \"\\u0000\" }\n",
		"[build]\nsteps = [\"a\\u0000\"]\n",
		"build.steps = [\"a\"]\nbuild.env.X = \"1\"\n",
		"[a]\nsteps=[\"\"\"\nx = 1\"\"\"]\n[a.env]\n\"\\u0041\" = \"x\"\n",
		"[[build]]\nsteps = []\n",
		"[build]\nsteps = [\"a\"]\ntimeout = \"-1s\"\nartifacts = [\"../../etc\"]\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %q is not an *Error", err, err)
			}
			if pe.Line < 1 || pe.Col < 1 || pe.Line > strings.Count(string(data), "\n")+1 {
				t.Fatalf("error position %d:%d is outside the file: %v", pe.Line, pe.Col, err)
			}
			return
		}
		for name, p := range file.Sections {
			if !isName(name) {
				t.Errorf("accepted section name %q", name)
			}
			if len(p.Steps) == 0 {
				t.Errorf("[%s] accepted with no steps", name)
			}
			for _, s := range p.Steps {
				if strings.TrimSpace(s) == "" || strings.IndexByte(s, 0) >= 0 {
					t.Errorf("[%s] accepted step %q", name, s)
				}
			}
			if p.Timeout < 0 {
				t.Errorf("[%s] accepted timeout %v", name, p.Timeout)
			}
			for _, a := range p.Artifacts {
				if a == "" || path.IsAbs(a) || a == ".." || strings.HasPrefix(a, "../") || path.Clean(a) != a || strings.IndexByte(a, 0) >= 0 {
					t.Errorf("[%s] accepted artifact %q", name, a)
				}
			}
			for k, v := range p.Env {
				if envNameProblem(k) != "" || strings.IndexByte(v, 0) >= 0 {
					t.Errorf("[%s] accepted env %q=%q", name, k, v)
				}
			}
		}
	})
}

// FuzzScanKeys feeds the position scanner text the decoder never vetted;
// it must not panic or loop whatever it is given.
func FuzzScanKeys(f *testing.F) {
	for _, seed := range []string{example, "[a\n\"\"\"", "x = '''", "a.\"b\\", "{[{,,}]}", "[[\"\\U0010FFFF\"]]"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for key, p := range scanKeys(s) {
			if p.line < 1 || p.col < 1 {
				t.Errorf("key %q at %d:%d", key, p.line, p.col)
			}
		}
	})
}
