package cgroup

import "testing"

func TestParse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ file, v2, v1 string }{
		{"0::/system.slice/slipway.service\n", "/system.slice/slipway.service", ""},
		{"12:cpu,cpuacct:/a\n11:memory:/docker/abc\n1:name=systemd:/x\n0::/\n", "/", "/docker/abc"},
		{"5:hugetlb,memory_x:/no\n", "", ""},
		{"", "", ""},
		{"garbage\n0::/last", "/last", ""},
	} {
		if v2, v1 := Parse(c.file); v2 != c.v2 || v1 != c.v1 {
			t.Errorf("Parse(%q) = %q, %q; want %q, %q", c.file, v2, v1, c.v2, c.v1)
		}
	}
}
