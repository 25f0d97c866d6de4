package configs

import (
	"errors"
	"strings"
	"testing"
)

// A limit left out gets its default, one written as 0 is off; the memory
// default is three quarters of the machine's shared by the builds.
func TestBuildLimitDefaults(t *testing.T) {
	t.Parallel()
	l := Loader{MemoryBytes: 24 << 30}
	c, err := l.Parse([]byte("[build]\nconcurrency = 2\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	b := c.Build
	if b.MaxProcesses != 512 || b.MaxFileBytes != 1<<30 || b.MaxOpenFiles != 4096 || b.MaxMemoryBytes != 9<<30 ||
		b.MaxTmpBytes != 2<<30 || b.MaxWorkspaceBytes != 10<<30 || b.MaxArtifactBytes != 1<<30 {
		t.Errorf("defaults: %+v", b)
	}
	if b.UIDRange != (IDRange{First: 2000000000, Count: 1024}) || b.UID != 0 || b.GID != 0 {
		t.Errorf("build identities by default: range %v, uid %d gid %d", b.UIDRange, b.UID, b.GID)
	}
	off := "[build]\nmax_processes = 0\nmax_file_bytes = 0\nmax_open_files = 0\nmax_memory_bytes = 0\n" +
		"max_tmp_bytes = 0\nmax_workspace_bytes = 0\nmax_artifact_bytes = 0\n"
	c, err = l.Parse([]byte(off), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	b = c.Build
	if b.MaxProcesses != 0 || b.MaxFileBytes != 0 || b.MaxOpenFiles != 0 || b.MaxMemoryBytes != 0 ||
		b.MaxTmpBytes != 0 || b.MaxWorkspaceBytes != 0 || b.MaxArtifactBytes != 0 {
		t.Errorf("limits written as 0 are not off: %+v", b)
	}
	// Unknown memory: no default memory limit.
	if c, err := (Loader{}).Parse([]byte("[build]\n"), "c.toml"); err != nil || c.Build.MaxMemoryBytes != 0 {
		t.Errorf("memory default with memory unknown: %v, %v", c.Build.MaxMemoryBytes, err)
	}
	if got := DefaultMemoryBytes(23<<30+500<<20, 2); got != 9019<<20 {
		t.Errorf("DefaultMemoryBytes(23.5 GiB, 2) = %d MiB", got>>20)
	}
}

func TestUIDRange(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		src  string
		want IDRange
		prob string
	}{
		{`uid_range = "3000000000-3000000001"`, IDRange{}, `c.toml:3: build.uid_range: id range "3000000000-3000000001" goes beyond 2147483647`},
		{`uid_range = "2100000000+64"`, IDRange{First: 2100000000, Count: 64}, ""},
		{`uid_range = "2100000000-2100000063"`, IDRange{First: 2100000000, Count: 64}, ""},
		{`uid_range = "2100000063-2100000000"`, IDRange{}, `c.toml:3: build.uid_range: id range "2100000063-2100000000" ends before it starts`},
		{`uid_range = "0-10"`, IDRange{}, `c.toml:3: build.uid_range: id range "0-10" must start above 0 (root)`},
		{`uid_range = "lots"`, IDRange{}, `c.toml:3: build.uid_range: invalid id range "lots" (write it as "2000000000-2000001023" or "2000000000+1024")`},
		{`uid_range = "2100000000+2"`, IDRange{}, `c.toml:3: build.uid_range 2100000000-2100000001 holds 2 ids, fewer than build.concurrency (4): every running build needs one`},
		{"uid_range = \"2100000000+8\"\nuid = 5000", IDRange{}, `c.toml:4: build.uid_range and build.uid are both set; keep uid_range (each build gets a uid of its own) and remove uid/gid`},
	} {
		c, err := Loader{}.Parse([]byte("\n[build]\n"+tc.src+"\nconcurrency = 4\n"), "c.toml")
		if tc.prob != "" {
			var ve *ValidationError
			if !errors.As(err, &ve) || !strings.HasPrefix(ve.Error(), tc.prob) {
				t.Errorf("%s: %v\nwant %s", tc.src, err, tc.prob)
			}
			continue
		}
		if err != nil || c.Build.UIDRange != tc.want {
			t.Errorf("%s: %+v, %v", tc.src, c.Build.UIDRange, err)
		}
	}
}

// The deprecated build.uid and build.gid still work: every build runs as
// that one uid; a missing one of the pair is nobody, as before.
func TestDeprecatedBuildUID(t *testing.T) {
	t.Parallel()
	c, err := Loader{}.Parse([]byte("[build]\nuid = 5000\n"), "c.toml")
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Build; b.UID != 5000 || b.GID != 65534 || b.UIDRange.Count != 0 {
		t.Errorf("uid = 5000: uid %d gid %d range %v", b.UID, b.GID, b.UIDRange)
	}
}
