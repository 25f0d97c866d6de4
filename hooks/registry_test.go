package hooks

import (
	"fmt"
	"testing"
)

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	t1, end1 := r.Begin("app", "alice", "SHA256:a", nil)
	t2, end2 := r.Begin("app", "alice", "SHA256:a", nil)
	if t1 == t2 || !isToken(t1) || !isToken(t2) {
		t.Fatalf("tokens %q and %q", t1, t2)
	}
	if p, ok := r.Lookup(t1); !ok || p != (Pusher{Repo: "app", User: "alice", KeyFingerprint: "SHA256:a"}) {
		t.Errorf("Lookup = %+v, %v", p, ok)
	}
	end1()
	end1()
	if _, ok := r.Lookup(t1); ok {
		t.Error("token still valid after its session ended")
	}
	if _, ok := r.Lookup(t2); !ok {
		t.Error("ending one session ended another")
	}
	end2()
	if _, ok := r.Lookup(""); ok {
		t.Error("empty token found")
	}
}

func TestRegistryOnEnd(t *testing.T) {
	t.Parallel()
	r := NewRegistry()
	tok, end := r.Begin("app", "alice", "SHA256:a", nil)
	var ran []string
	if !r.OnEnd(tok, func() { ran = append(ran, "first") }) || !r.OnEnd(tok, func() { ran = append(ran, "second") }) {
		t.Fatal("OnEnd refused an open session")
	}
	if len(ran) != 0 {
		t.Fatal("OnEnd ran before the session ended")
	}
	end()
	end()
	if fmt.Sprint(ran) != "[first second]" {
		t.Errorf("ran %v at the session's end, want each once, in order", ran)
	}
	if r.OnEnd(tok, func() { t.Error("ran for an ended session") }) {
		t.Error("OnEnd took a function for an ended session")
	}
}

func ExampleRegistry() {
	r := NewRegistry()
	// gitserver, before it execs git receive-pack for alice:
	token, end := r.Begin("team/app", "alice", "SHA256:…", nil)
	// ... git runs with SLIPWAY_PUSH_TOKEN=<token>; its hooks ask:
	p, ok := r.Lookup(token)
	fmt.Println(p.Repo, p.User, ok)
	// git has exited:
	end()
	_, ok = r.Lookup(token)
	fmt.Println(ok)
	// Output:
	// team/app alice true
	// false
}
