package hooks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"slipway/record"
)

// The hook protocol, version 1. Every message is one JSON object on one line.
//
// The client sends one request and then keeps its side open without writing:
//
//	{"v":1,"hook":"pre-receive","token":"…","git_dir":"/abs/repo.git","options":["wait"],"refs":2}
//	{"old":"<40 or 64 hex>","new":"<hex>","ref":"refs/heads/main"}
//	{"old":"…","new":"…","ref":"refs/tags/v1"}
//
// The count of ref lines is announced in the header so the daemon can refuse
// an oversized push before reading it. The daemon answers with any number of
// output chunks, relayed verbatim to git's stderr, and ends with the verdict:
//
//	{"out":"refs/heads/main: …\n"}
//	{"exit":1}
//
// The client never half-closes: the daemon reads on after the request, and
// end of file there means the client (and so, usually, the pusher) is gone,
// which cancels whatever the daemon is still doing for that push. A daemon
// that meets a version it does not speak answers with a message and exit 1.
//
// A pre-receive header also carries "quarantine", the folder where git keeps
// the push's objects until the hook says yes (GIT_QUARANTINE_PATH), which a
// verified push is built from. It is optional, so version 1 still holds both
// ways: a daemon that does not know it ignores it, and without it the daemon
// refuses only the pushes it would have to verify. The daemon never trusts
// it: it must be a quarantine folder of the very repository (see
// Server.quarantineOf).
const (
	// ProtocolVersion is the version this package speaks on both sides.
	ProtocolVersion = 1
	// MaxRefs bounds the ref updates of one push; git mirror pushes of big
	// repositories reach tens of thousands.
	MaxRefs = 100_000
	// MaxPushOptions bounds the push options of one push (`git push -o`).
	MaxPushOptions = 100

	// maxLine bounds one protocol line (the header carries the options).
	maxLine = 128 << 10
	// maxRequest bounds a whole request: 100,000 refs with long names fit.
	maxRequest = 64 << 20
	// maxGitDir is PATH_MAX.
	maxGitDir = 4096
	// maxResponseLine bounds a daemon line on the client: output chunks are
	// at most outChunk bytes, which JSON escaping can grow sixfold.
	maxResponseLine = 8*outChunk + 1024
	// outChunk is the largest piece of output sent in one message.
	outChunk = 16 << 10
)

// Hook names the client and the daemon know.
const (
	PreReceive  = "pre-receive"
	PostReceive = "post-receive"
	// RefTransaction is git's reference-transaction hook, run around
	// every ref update git makes, with the transaction's state as its
	// argument: Slipway records the updates in the "prepared" state,
	// before git moves the refs, and refuses them when it cannot.
	RefTransaction = "reference-transaction"
)

// The states of a reference transaction Slipway takes part in. git calls
// the hook in others too (newer versions: "preparing"); the hook script
// ignores those.
const (
	StatePrepared  = "prepared"
	StateCommitted = "committed"
	StateAborted   = "aborted"
)

// ErrProtocol is wrapped by every error about a malformed hook message.
var ErrProtocol = errors.New("hook protocol error")

// errVersion is returned (wrapped) for a request of another protocol version,
// so that the daemon can say which one it speaks.
var errVersion = errors.New("unsupported hook protocol version")

type requestHeader struct {
	Version int      `json:"v"`
	Hook    string   `json:"hook"`
	Token   string   `json:"token,omitempty"`
	GitDir  string   `json:"git_dir"`
	Options []string `json:"options,omitempty"`
	Refs    int      `json:"refs"`
	// Quarantine is GIT_QUARANTINE_PATH of a pre-receive hook.
	Quarantine string `json:"quarantine,omitempty"`
	// State is the state of a reference-transaction hook.
	State string `json:"state,omitempty"`
	// Session names, for a hook without a token, the git process whose
	// hooks these are (so that its reference transactions and its
	// post-receive find one push).
	Session string `json:"session,omitempty"`
}

type refLine struct {
	Old  string `json:"old"`
	New  string `json:"new"`
	Name string `json:"ref"`
}

// request is one hook invocation as the daemon received it, validated.
type request struct {
	Hook       string
	Token      string
	GitDir     string
	Options    []string
	Refs       []record.RefUpdate
	Quarantine string // pre-receive only; unchecked until Server.quarantineOf
	State      string // reference-transaction only
	Session    string // without a token only
}

type response struct {
	Out  string `json:"out,omitempty"`
	Exit *int   `json:"exit,omitempty"`
}

// writeRequest encodes req in protocol version 1.
func writeRequest(w io.Writer, req request) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	h := requestHeader{Version: ProtocolVersion, Hook: req.Hook, Token: req.Token,
		GitDir: req.GitDir, Options: req.Options, Refs: len(req.Refs), Quarantine: req.Quarantine,
		State: req.State, Session: req.Session}
	if err := enc.Encode(h); err != nil {
		return fmt.Errorf("send request header: %w", err)
	}
	for _, u := range req.Refs {
		if err := enc.Encode(refLine{Old: u.Old, New: u.New, Name: u.Name}); err != nil {
			return fmt.Errorf("send ref %q: %w", u.Name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("send request: %w", err)
	}
	return nil
}

// readRequest decodes and validates one request. It reads exactly the
// announced lines and no further, and it never allocates much more than the
// bounds allow, whatever r holds.
func readRequest(r io.Reader) (request, error) {
	br := bufio.NewReaderSize(&io.LimitedReader{R: r, N: maxRequest}, maxLine)
	line, err := readLine(br)
	if err != nil {
		return request{}, fmt.Errorf("%w: read header: %v", ErrProtocol, err)
	}
	var h requestHeader
	if err := json.Unmarshal(line, &h); err != nil {
		return request{}, fmt.Errorf("%w: decode header: %v", ErrProtocol, err)
	}
	if h.Version != ProtocolVersion {
		return request{}, fmt.Errorf("%w %d (this daemon speaks %d)", errVersion, h.Version, ProtocolVersion)
	}
	req := request{Hook: h.Hook, Token: h.Token, GitDir: h.GitDir, Options: h.Options, Quarantine: h.Quarantine,
		State: h.State, Session: h.Session}
	if err := req.validateHeader(h.Refs); err != nil {
		return request{}, fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	// Grow with the refs actually read, not with the announced count: a
	// header may promise 100,000 refs and send none.
	req.Refs = make([]record.RefUpdate, 0, min(h.Refs, 1024))
	for i := range h.Refs {
		line, err := readLine(br)
		if err != nil {
			return request{}, fmt.Errorf("%w: read ref %d of %d: %v", ErrProtocol, i+1, h.Refs, err)
		}
		var rl refLine
		if err := json.Unmarshal(line, &rl); err != nil {
			return request{}, fmt.Errorf("%w: decode ref %d: %v", ErrProtocol, i+1, err)
		}
		u := record.RefUpdate{Name: rl.Name, Old: rl.Old, New: rl.New}
		if err := u.Validate(); err != nil {
			return request{}, fmt.Errorf("%w: ref %d: %v", ErrProtocol, i+1, err)
		}
		req.Refs = append(req.Refs, u)
	}
	return req, nil
}

func (req *request) validateHeader(refs int) error {
	switch req.Hook {
	case PreReceive, PostReceive:
	case RefTransaction:
		switch req.State {
		case StatePrepared, StateCommitted, StateAborted:
		default:
			return fmt.Errorf("unknown reference transaction state %q", truncate(req.State))
		}
	default:
		return fmt.Errorf("unknown hook %q", truncate(req.Hook))
	}
	if len(req.Session) > 64 || strings.ContainsFunc(req.Session, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return fmt.Errorf("malformed session %q", truncate(req.Session))
	}
	if req.Token != "" && !isToken(req.Token) {
		return errors.New("malformed push token")
	}
	if len(req.GitDir) > maxGitDir || !filepath.IsAbs(req.GitDir) || strings.ContainsRune(req.GitDir, 0) {
		return fmt.Errorf("git dir %q is not an absolute path", truncate(req.GitDir))
	}
	if req.Quarantine != "" && (len(req.Quarantine) > maxGitDir || !filepath.IsAbs(req.Quarantine) || strings.ContainsRune(req.Quarantine, 0)) {
		return fmt.Errorf("quarantine %q is not an absolute path", truncate(req.Quarantine))
	}
	if len(req.Options) > MaxPushOptions {
		return fmt.Errorf("%d push options (at most %d)", len(req.Options), MaxPushOptions)
	}
	for _, o := range req.Options {
		// git itself refuses these; a push option is one pkt-line of text.
		if strings.ContainsAny(o, "\x00\n") {
			return fmt.Errorf("push option %q contains a NUL or newline", truncate(o))
		}
	}
	if refs < 0 || refs > MaxRefs {
		return fmt.Errorf("%d ref updates (at most %d)", refs, MaxRefs)
	}
	return nil
}

// readLine returns the next line without its newline. A line longer than the
// reader's buffer, or one cut short by the end of input, is an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("line longer than %d bytes", br.Size())
	case err == io.EOF && len(line) > 0:
		return nil, errors.New("unterminated line")
	case err != nil:
		return nil, err
	}
	return bytes.TrimSuffix(line, []byte{'\n'}), nil
}

// parseRefLine parses one line of git's hook input, "<old> <new> <ref>".
func parseRefLine(s string) (record.RefUpdate, error) {
	old, rest, ok1 := strings.Cut(s, " ")
	nw, name, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return record.RefUpdate{}, fmt.Errorf("malformed ref update %q", truncate(s))
	}
	u := record.RefUpdate{Name: name, Old: old, New: nw}
	if err := u.Validate(); err != nil {
		return record.RefUpdate{}, err
	}
	return u, nil
}

// truncate keeps hostile input short in messages and logs.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
