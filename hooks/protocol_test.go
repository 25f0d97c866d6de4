package hooks

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"slipway/record"
)

func sampleRequest() request {
	return request{
		Hook:    PostReceive,
		Token:   strings.Repeat("ab", tokenBytes),
		GitDir:  "/srv/slipway/repos/team/app.git",
		Options: []string{"wait", "ci.skip=<&>"},
		Refs: []record.RefUpdate{
			{Name: "refs/heads/main", Old: zero, New: strings.Repeat("1", 40)},
			{Name: "refs/release/prod", Old: strings.Repeat("2", 40), New: zero},
			{Name: "refs/heads/ünïcode", Old: strings.Repeat("3", 64), New: strings.Repeat("4", 64)},
		},
	}
}

func encode(t testing.TB, req request) []byte {
	var b bytes.Buffer
	if err := writeRequest(&b, req); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sameRequest(a, b request) bool {
	return a.Hook == b.Hook && a.Token == b.Token && a.GitDir == b.GitDir && a.Quarantine == b.Quarantine &&
		slices.Equal(a.Options, b.Options) && slices.Equal(a.Refs, b.Refs)
}

func TestRequestRoundTrip(t *testing.T) {
	t.Parallel()
	pre := sampleRequest()
	pre.Hook, pre.Quarantine = PreReceive, pre.GitDir+"/objects/tmp_objdir-incoming-Ab12_z"
	for _, req := range []request{sampleRequest(), pre} {
		got, err := readRequest(bytes.NewReader(encode(t, req)))
		if err != nil {
			t.Fatal(err)
		}
		if !sameRequest(got, req) {
			t.Errorf("decoded %+v\nwant    %+v", got, req)
		}
	}
	// A header without the quarantine, as a client before it sends.
	old := []byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":0}` + "\n")
	if got, err := readRequest(bytes.NewReader(old)); err != nil || got.Quarantine != "" {
		t.Errorf("header without a quarantine: %+v, %v", got, err)
	}
}

func TestReadRequestRefusesHostileInput(t *testing.T) {
	t.Parallel()
	valid := encode(t, sampleRequest())
	header, body, _ := bytes.Cut(valid, []byte("\n"))
	withHeader := func(h string) []byte { return append([]byte(h+"\n"), body...) }
	hexTok := strings.Repeat("ab", tokenBytes)
	cases := map[string]struct {
		in   []byte
		want string
	}{
		"empty":            {nil, "read header: EOF"},
		"not json":         {[]byte("hello\n"), "decode header"},
		"other version":    {[]byte(`{"v":2,"hook":"pre-receive"}` + "\n"), "unsupported hook protocol version 2"},
		"unknown hook":     {withHeader(`{"v":1,"hook":"update","git_dir":"/r.git","refs":3}`), `unknown hook "update"`},
		"bad token":        {withHeader(`{"v":1,"hook":"pre-receive","token":"ABC","git_dir":"/r.git","refs":3}`), "malformed push token"},
		"relative git dir": {withHeader(`{"v":1,"hook":"pre-receive","git_dir":"repos/app.git","refs":3}`), "not an absolute path"},
		"relative quarantine": {withHeader(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","quarantine":"objects/incoming-x","refs":3}`),
			`quarantine "objects/incoming-x" is not an absolute path`},
		"NUL in quarantine": {withHeader(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","quarantine":"/r.git/objects/incoming-x\u0000","refs":3}`),
			"is not an absolute path"},
		"long quarantine": {withHeader(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","quarantine":"/` + strings.Repeat("q", maxGitDir) + `","refs":3}`),
			"is not an absolute path"},
		"too many refs": {[]byte(fmt.Sprintf(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":%d}`+"\n", MaxRefs+1)), "100001 ref updates"},
		"negative refs": {[]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":-1}` + "\n"), "-1 ref updates"},
		"fewer refs":    {append(header, '\n'), "read ref 1 of 3: EOF"},
		"unterminated":  {valid[:len(valid)-1], "unterminated line"},
		"newline option": {withHeader(`{"v":1,"hook":"pre-receive","token":"` + hexTok + `","git_dir":"/r.git","options":["a\nb"],"refs":3}`),
			"contains a NUL or newline"},
		"too many options": {withHeader(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","options":[` +
			strings.TrimSuffix(strings.Repeat(`"o",`, MaxPushOptions+1), ",") + `],"refs":3}`), "101 push options"},
		"long line":  {[]byte(`{"v":1,"hook":"pre-receive","git_dir":"/` + strings.Repeat("a", maxLine) + `"}` + "\n"), "line longer than"},
		"bad ref id": {[]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":1}` + "\n" + `{"old":"xyz","new":"abc","ref":"refs/heads/x"}` + "\n"), "ref 1"},
		"ref outside refs/": {[]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":1}` + "\n" +
			`{"old":"` + zero + `","new":"` + strings.Repeat("1", 40) + `","ref":"HEAD"}` + "\n"), "does not start with refs/"},
		"control char in ref": {[]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":1}` + "\n" +
			`{"old":"` + zero + `","new":"` + strings.Repeat("1", 40) + `","ref":"refs/heads/\u001b[2J"}` + "\n"), "control character"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := readRequest(bytes.NewReader(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(encode(f, sampleRequest()))
	empty := sampleRequest()
	empty.Refs, empty.Options, empty.Token = nil, nil, ""
	f.Add(encode(f, empty))
	f.Add([]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":100000}` + "\n"))
	f.Add([]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","refs":1}` + "\n{}\n"))
	f.Add([]byte(`{"v":1,"hook":"post-receive","git_dir":"/\u0000","options":[null],"refs":1e3}` + "\n"))
	f.Add([]byte("{\"v\":1}\n\n\n"))
	f.Add([]byte(`{"v":1,"hook":"pre-receive","git_dir":"/r.git","quarantine":"/r.git/objects/incoming-x","refs":0}` + "\n"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := readRequest(bytes.NewReader(data))
		if err != nil {
			return
		}
		if req.Hook != PreReceive && req.Hook != PostReceive {
			t.Fatalf("accepted hook %q", req.Hook)
		}
		if len(req.Refs) > MaxRefs || len(req.Options) > MaxPushOptions {
			t.Fatalf("accepted %d refs, %d options", len(req.Refs), len(req.Options))
		}
		if q := req.Quarantine; q != "" && (q[0] != '/' || len(q) > maxGitDir || strings.ContainsRune(q, 0)) {
			t.Fatalf("accepted quarantine %q", q)
		}
		for _, u := range req.Refs {
			if err := u.Validate(); err != nil {
				t.Fatalf("accepted invalid ref: %v", err)
			}
		}
		// What the daemon accepts, the client can say again identically.
		again, err := readRequest(bytes.NewReader(encode(t, req)))
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if !sameRequest(req, again) {
			t.Fatalf("round trip changed the request:\n%+v\n%+v", req, again)
		}
	})
}

func TestParseRefLine(t *testing.T) {
	t.Parallel()
	u, err := parseRefLine(zero + " " + strings.Repeat("a", 40) + " refs/heads/feature/x")
	if err != nil || u != (record.RefUpdate{Name: "refs/heads/feature/x", Old: zero, New: strings.Repeat("a", 40)}) {
		t.Errorf("got %+v, %v", u, err)
	}
	for _, bad := range []string{"", "a b", zero + " " + zero + " refs/heads/x", zero + " zz refs/heads/x", zero + " " + strings.Repeat("a", 40) + " main"} {
		if _, err := parseRefLine(bad); err == nil {
			t.Errorf("parseRefLine(%q) accepted", bad)
		}
	}
}

func FuzzParseRefLine(f *testing.F) {
	f.Add(zero + " " + strings.Repeat("a", 40) + " refs/heads/main")
	f.Add(strings.Repeat("b", 64) + " " + zero + zero[:24] + " refs/tags/v1")
	f.Add("  refs/heads/x")
	f.Fuzz(func(t *testing.T, line string) {
		u, err := parseRefLine(line)
		if err != nil {
			return
		}
		if !strings.HasPrefix(u.Name, "refs/") || u.Old+" "+u.New+" "+u.Name != line {
			t.Fatalf("parsed %q as %+v", line, u)
		}
	})
}
