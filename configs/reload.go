package configs

import (
	"fmt"
	"strings"
)

// Change is one setting whose value a reload would change.
type Change struct {
	Key, Old, New string
}

func (c Change) String() string { return fmt.Sprintf("%s %s → %s", c.Key, c.Old, c.New) }

// KeepRestartSettings finds the settings of next that differ from
// running's but that a running daemon cannot change (where it listens and
// keeps its data, its host key, the build workers and sandbox, the limits
// of connections not authenticated yet), and puts running's values back in
// next, so that next describes what runs. It returns them, for a reload to
// report as needing a restart; everything else in next applies.
func KeepRestartSettings(running, next *Config) []Change {
	var out []Change
	keep := func(key string, old, new *string) {
		if *old != *new {
			out = append(out, Change{key, fmt.Sprintf("%q", *old), fmt.Sprintf("%q", *new)})
			*new = *old
		}
	}
	keepAny := func(key string, differ bool, old, new any, restore func()) {
		if differ {
			out = append(out, Change{key, fmt.Sprint(old), fmt.Sprint(new)})
			restore()
		}
	}
	keep("data_dir", &running.DataDir, &next.DataDir)
	keep("ssh.listen", &running.SSH.Listen, &next.SSH.Listen)
	keep("ssh.host_key", &running.SSH.HostKey, &next.SSH.HostKey)
	keep("http.listen", &running.HTTP.Listen, &next.HTTP.Listen)
	keep("http.tls_cert", &running.HTTP.TLSCert, &next.HTTP.TLSCert)
	keep("http.tls_key", &running.HTTP.TLSKey, &next.HTTP.TLSKey)
	r, n := &running.SSH, &next.SSH
	keepAny("ssh.max_startups", r.MaxStartups.String() != n.MaxStartups.String(), r.MaxStartups, n.MaxStartups, func() { n.MaxStartups = r.MaxStartups })
	keepAny("ssh.per_source_max_startups", r.PerSourceMaxStartups != n.PerSourceMaxStartups, r.PerSourceMaxStartups, n.PerSourceMaxStartups, func() { n.PerSourceMaxStartups = r.PerSourceMaxStartups })
	keepAny("ssh.per_source_net_block_size", r.PerSourceNetBlockSize.String() != n.PerSourceNetBlockSize.String(), r.PerSourceNetBlockSize, n.PerSourceNetBlockSize, func() { n.PerSourceNetBlockSize = r.PerSourceNetBlockSize })
	keepAny("ssh.idle_timeout", r.IdleTimeout != n.IdleTimeout, r.IdleTimeout, n.IdleTimeout, func() { n.IdleTimeout = r.IdleTimeout })
	rb, nb := &running.Build, &next.Build
	keepAny("build.concurrency", rb.Concurrency != nb.Concurrency, rb.Concurrency, nb.Concurrency, func() { nb.Concurrency = rb.Concurrency })
	keep("build.sandbox", &rb.Sandbox, &nb.Sandbox)
	keep("build.executor", &rb.Executor, &nb.Executor)
	keepAny("kubernetes", running.Kubernetes.describe() != next.Kubernetes.describe(), "(the running [kubernetes])", "(the file's)", func() { next.Kubernetes = running.Kubernetes })
	keep("build.work_dir", &rb.WorkDir, &nb.WorkDir)
	keepAny("build.uid_range", rb.UIDRange != nb.UIDRange, rb.UIDRange, nb.UIDRange, func() { nb.UIDRange = rb.UIDRange })
	keepAny("build.uid", rb.UID != nb.UID, rb.UID, nb.UID, func() { nb.UID = rb.UID })
	keepAny("build.gid", rb.GID != nb.GID, rb.GID, nb.GID, func() { nb.GID = rb.GID })
	rw, nw := &running.WebhookSettings, &next.WebhookSettings
	keepAny("webhooks.workers", rw.Workers != nw.Workers, rw.Workers, nw.Workers, func() { nw.Workers = rw.Workers })
	keepAny("config_repo", running.ConfigRepo != next.ConfigRepo, running.ConfigRepo, next.ConfigRepo, func() { next.ConfigRepo = running.ConfigRepo })
	return out
}

// Summary says in a few words who and what a reload from running to next
// adds and removes: "users +bob -carol; repos +app".
func Summary(running, next *Config) string {
	names := func(c *Config, users bool) (list []string, set map[string]bool) {
		set = map[string]bool{}
		if users {
			for _, u := range c.Users {
				list, set[u.Name] = append(list, u.Name), true
			}
		} else {
			for _, r := range c.Repos {
				list, set[r.Name] = append(list, r.Name), true
			}
		}
		return list, set
	}
	var parts []string
	for _, k := range []struct {
		what  string
		users bool
	}{{"users", true}, {"repos", false}} {
		before, was := names(running, k.users)
		after, is := names(next, k.users)
		var words []string
		for _, n := range after {
			if !was[n] {
				words = append(words, "+"+n)
			}
		}
		for _, n := range before {
			if !is[n] {
				words = append(words, "-"+n)
			}
		}
		if len(words) > 6 {
			words = append(words[:6], fmt.Sprintf("(%d more)", len(words)-6))
		}
		if len(words) > 0 {
			parts = append(parts, k.what+" "+strings.Join(words, " "))
		}
	}
	if len(parts) == 0 {
		return "no user or repository added or removed"
	}
	return strings.Join(parts, "; ")
}
