package configs

import "testing"

func TestSSHConnectionLimits(t *testing.T) {
	for _, tc := range []struct {
		ssh       string
		startups  Startups
		perSource int
		block     NetBlockSize
	}{
		{"", DefaultMaxStartups, DefaultPerSourceMaxStartups, DefaultNetBlockSize},
		{`max_startups = "10:30:100"`, Startups{Start: 10, Rate: 30, Full: 100}, DefaultPerSourceMaxStartups, DefaultNetBlockSize},
		// One number is a plain cap, as in sshd_config, quoted or not.
		{`max_startups = "50"`, Startups{Start: 50, Rate: 100, Full: 50}, DefaultPerSourceMaxStartups, DefaultNetBlockSize},
		{`max_startups = 50`, Startups{Start: 50, Rate: 100, Full: 50}, DefaultPerSourceMaxStartups, DefaultNetBlockSize},
		{"per_source_max_startups = 4\nper_source_net_block_size = \"24:48\"", DefaultMaxStartups, 4, NetBlockSize{V4: 24, V6: 48}},
		// The IPv4 length alone keeps the IPv6 default.
		{`per_source_net_block_size = 24`, DefaultMaxStartups, DefaultPerSourceMaxStartups, NetBlockSize{V4: 24, V6: 64}},
	} {
		c, err := Loader{}.Parse([]byte("[ssh]\n"+tc.ssh+"\n"), "c.toml")
		if err != nil {
			t.Errorf("%q: %v", tc.ssh, err)
			continue
		}
		if c.SSH.MaxStartups != tc.startups || c.SSH.PerSourceMaxStartups != tc.perSource || c.SSH.PerSourceNetBlockSize != tc.block {
			t.Errorf("%q: max_startups %v, per source %d, block %v; want %v, %d, %v", tc.ssh,
				c.SSH.MaxStartups, c.SSH.PerSourceMaxStartups, c.SSH.PerSourceNetBlockSize, tc.startups, tc.perSource, tc.block)
		}
	}
}
