package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

const example = `# The example from the design notes, plus every key.
[build]
steps = ["go vet ./...", "go test ./..."]
timeout = "15m"
artifacts = ["bin/", "dist/app.tar.gz"]
network = true
cache = true

[build.env]
GOFLAGS = "-mod=readonly"
GOMAXPROCS = 2

[nightly]
steps = [
  "go test -tags integration ./...",  # slow
]
`

func TestParseReadsEveryKey(t *testing.T) {
	f, err := Parse([]byte(example))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := map[string]Pipeline{
		"build": {
			Steps:     []string{"go vet ./...", "go test ./..."},
			Timeout:   15 * time.Minute,
			Artifacts: []string{"bin", "dist/app.tar.gz"},
			Env:       map[string]string{"GOFLAGS": "-mod=readonly", "GOMAXPROCS": "2"},
			Network:   true,
			Cache:     true,
		},
		"nightly": {Steps: []string{"go test -tags integration ./..."}},
	}
	if !reflect.DeepEqual(f.Sections, want) {
		t.Errorf("sections:\n got %#v\nwant %#v", f.Sections, want)
	}
}

func TestSectionFallsBack(t *testing.T) {
	f, err := Parse([]byte("[build]\nsteps = [\"make\"]\n[nightly]\nsteps = [\"make slow\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, fallback, found, step string
		ok                          bool
	}{
		{"nightly", "build", "nightly", "make slow", true},
		{"weekly", "build", "build", "make", true},
		{"build", "", "build", "make", true},
		{"weekly", "", "", "", false},
		{"weekly", "monthly", "", "", false},
	} {
		p, found, ok := f.Section(tc.name, tc.fallback)
		if ok != tc.ok || found != tc.found {
			t.Errorf("Section(%q, %q) = %q, %v; want %q, %v", tc.name, tc.fallback, found, ok, tc.found, tc.ok)
			continue
		}
		if ok && p.Steps[0] != tc.step {
			t.Errorf("Section(%q, %q) steps = %q, want %q", tc.name, tc.fallback, p.Steps, tc.step)
		}
	}
	// The caller gets a copy: changing it must not change the next build.
	p, _, _ := f.Section("build", "")
	p.Steps[0] = "rm -rf /"
	if again, _, _ := f.Section("build", ""); again.Steps[0] != "make" {
		t.Errorf("Section returned shared slices; step is now %q", again.Steps[0])
	}
}

// TestParseErrors pins the exact messages a pusher reads, positions included.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"syntax", "[build]\nsteps = [\"a\"]\ntimeout = 15m\n",
			[]string{`.slipway.toml:3:13: expected a top-level item to end with a newline, comment, or EOF, but got 'm' instead`}},
		{"unterminated string", "[build]\nsteps = [\"a]\n",
			[]string{`.slipway.toml:2:13: strings cannot contain newlines`}},
		{"duplicate key", "[build]\nsteps = [\"a\"]\nsteps = [\"b\"]\n",
			[]string{`.slipway.toml:3:1: Key 'build.steps' has already been defined.`}},
		{"misspelt key", "[build]\nsteps = [\"a\"]\n  stpes = [\"b\"]\n",
			[]string{`.slipway.toml:3:3: unknown key "stpes" in [build] (did you mean "steps"?)`}},
		{"wrong case", "[build]\nSteps = [\"a\"]\n",
			[]string{`.slipway.toml:1:1: [build] has no steps; add steps = ["make test"]`,
				`.slipway.toml:2:1: unknown key "Steps" in [build] (did you mean "steps"?)`}},
		{"unrelated key", "[build]\nsteps = [\"a\"]\nservices = \"db\"\n",
			[]string{`.slipway.toml:3:1: unknown key "services" in [build] (known keys: steps, timeout, artifacts, env, network, cache, image)`}},
		{"image not a string", "[build]\nsteps = [\"a\"]\nimage = 3\n",
			[]string{`.slipway.toml:3:1: [build] image must be a string such as "golang:1.26", not an integer`}},
		{"image with a space", "[build]\nsteps = [\"a\"]\nimage = \"golang 1.26\"\n",
			[]string{`.slipway.toml:3:1: [build] image "golang 1.26" is not an image name (such as "golang:1.26")`}},
		{"key outside sections", "steps = [\"a\"]\n",
			[]string{`.slipway.toml:1:1: key "steps" is outside any section; put it under a section such as [build]`}},
		{"array of tables", "[[build]]\nsteps = [\"a\"]\n",
			[]string{`.slipway.toml:1:1: [[build]] is an array of tables; write the section as [build]`}},
		{"no steps", "# comment\n\n  [build]\ntimeout = \"1m\"\n",
			[]string{`.slipway.toml:3:3: [build] has no steps; add steps = ["make test"]`}},
		{"empty steps", "[build]\nsteps = []\n",
			[]string{`.slipway.toml:2:1: [build] steps is empty; a pipeline needs at least one step`}},
		{"blank step", "[build]\nsteps = [\"make\", \"  \"]\n",
			[]string{`.slipway.toml:2:1: [build] step 2 is blank`}},
		{"steps not a list", "[build]\nsteps = \"make\"\n",
			[]string{`.slipway.toml:2:1: [build] steps must be an array of strings, not a string`}},
		{"step not a string", "[build]\nsteps = [\"make\", 3]\n",
			[]string{`.slipway.toml:2:1: [build] steps: entry 2 must be a string, not an integer`}},
		{"timeout not a duration", "[build]\nsteps = [\"a\"]\ntimeout = \"15 minutes\"\n",
			[]string{`.slipway.toml:3:1: [build] timeout "15 minutes" is not a duration (use e.g. "90s", "15m", "1h30m")`}},
		{"timeout zero", "[build]\nsteps = [\"a\"]\ntimeout = \"0s\"\n",
			[]string{`.slipway.toml:3:1: [build] timeout "0s" must be more than zero`}},
		{"timeout negative", "[build]\nsteps = [\"a\"]\ntimeout = \"-5m\"\n",
			[]string{`.slipway.toml:3:1: [build] timeout "-5m" must be more than zero`}},
		{"timeout integer", "[build]\nsteps = [\"a\"]\ntimeout = 900\n",
			[]string{`.slipway.toml:3:1: [build] timeout must be a duration string such as "15m", not an integer`}},
		{"artifacts escape", "[build]\nsteps = [\"a\"]\nartifacts = [\"/etc/passwd\", \"../x\", \"bin/../../x\", \"\", \"ok/../fine\"]\n",
			[]string{
				`.slipway.toml:3:1: [build] artifact "/etc/passwd" is absolute; artifacts are relative to the workspace`,
				`.slipway.toml:3:1: [build] artifact "../x" leaves the workspace`,
				`.slipway.toml:3:1: [build] artifact "bin/../../x" leaves the workspace`,
				`.slipway.toml:3:1: [build] artifact "" is empty`,
			}},
		{"network not bool", "[build]\nsteps = [\"a\"]\nnetwork = \"yes\"\n",
			[]string{`.slipway.toml:3:1: [build] network must be true or false, not a string`}},
		{"env reserved in table", "[build]\nsteps = [\"a\"]\n[build.env]\nOK = \"1\"\n  PATH = \"/evil\"\nSLIPWAY_COMMIT = \"x\"\nCI = \"false\"\nHOME = \"/\"\n",
			[]string{
				`.slipway.toml:5:3: [build] env PATH is set by Slipway and cannot be overridden`,
				`.slipway.toml:6:1: [build] env SLIPWAY_COMMIT: names starting with SLIPWAY_ are reserved for Slipway`,
				`.slipway.toml:7:1: [build] env CI is set by Slipway and cannot be overridden`,
				`.slipway.toml:8:1: [build] env HOME is set by Slipway and cannot be overridden`,
			}},
		{"env inline", "[build]\nsteps = [\"a\"]\nenv = { A = \"1\", \"1BAD\" = \"x\", 'A-B' = \"y\" }\n",
			[]string{
				`.slipway.toml:3:18: [build] env name "1BAD" is not a shell variable name (letters, digits and '_', not starting with a digit)`,
				`.slipway.toml:3:32: [build] env name "A-B" is not a shell variable name (letters, digits and '_', not starting with a digit)`,
			}},
		{"env dotted", "[build]\nsteps = [\"a\"]\nenv.GOOS = \"linux\"\nenv.PATH = \"x\"\nenv.A.B = \"x\"\n",
			[]string{
				`.slipway.toml:4:1: [build] env PATH is set by Slipway and cannot be overridden`,
				`.slipway.toml:5:1: [build] env A must be a string, not a table`,
			}},
		{"dotted keys at the top", "build.steps = [\"a\"]\nbuild.stpes = 1\n",
			[]string{`.slipway.toml:2:1: unknown key "stpes" in [build] (did you mean "steps"?)`}},
		{"env not a string", "[build]\nsteps = [\"a\"]\nenv = { A = [1] }\n",
			[]string{`.slipway.toml:3:9: [build] env A must be a string, not an array`}},
		{"env not a table", "[build]\nsteps = [\"a\"]\nenv = \"A=1\"\n",
			[]string{`.slipway.toml:3:1: [build] env must be a table of NAME = "value", not a string`}},
		{"section name", "[\"my build\"]\nsteps = [\"a\"]\n",
			[]string{`.slipway.toml:1:1: section name "my build" may only use letters, digits, '-' and '_'`}},
		{"strings do not fool the scanner", "[build]\nsteps = [\"\"\"\nfake = 1\n[other]\"\"\", '''x = \"'''\n]\n  bad = 1 # stpes = 2\n",
			[]string{`.slipway.toml:6:3: unknown key "bad" in [build] (known keys: steps, timeout, artifacts, env, network, cache, image)`}},
		{"errors in file order across sections", "[b]\nsteps = [\"x\"]\nzz = 1\n[a]\nyy = 2\n",
			[]string{
				`.slipway.toml:3:1: unknown key "zz" in [b] (known keys: steps, timeout, artifacts, env, network, cache, image)`,
				`.slipway.toml:4:1: [a] has no steps; add steps = ["make test"]`,
				`.slipway.toml:5:1: unknown key "yy" in [a] (known keys: steps, timeout, artifacts, env, network, cache, image)`,
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.file))
			if err == nil {
				t.Fatalf("Parse accepted the file: %#v", f)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not an *Error", err)
			}
		})
	}
}

func TestParseAcceptsEmptyFile(t *testing.T) {
	f, err := Parse([]byte("# nothing yet\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Section(DefaultSection, ""); ok {
		t.Error("an empty file has a build section")
	}
}

func TestParseRefusesHugeFile(t *testing.T) {
	data := []byte("[build]\nsteps = [\"a\"]\n" + strings.Repeat("#", MaxFileSize))
	if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), "the limit is") {
		t.Errorf("Parse of a %d byte file: %v", len(data), err)
	}
}
