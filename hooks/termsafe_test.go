package hooks

import (
	"context"
	"io"
	"strings"
	"testing"

	"slipway/record"
)

// hostileListener streams what a hostile build prints, in pieces that cut
// its escape sequences, and leaves a colour on and a sequence unfinished
// at the end.
type hostileListener struct{ pieces []string }

func (l hostileListener) PushRecorded(_ context.Context, _ record.Push, out io.Writer) {
	for _, p := range l.pieces {
		io.WriteString(out, p)
	}
}

// TestPusherSeesOutputSafe: everything the daemon sends the pusher's
// terminal goes through the termsafe filter, however it is split into
// writes: carriage returns, cursor movement, OSC and hidden text arrive as
// visible escapes, colours arrive and are reset at the end, and output
// that escaping makes six times longer arrives whole.
func TestPusherSeesOutputSafe(t *testing.T) {
	nuls := strings.Repeat("\x00", 3*outChunk)
	l := hostileListener{pieces: []string{
		"[00:01.000] │ 50%\r", "60%\r", "\n[00:01.100] │ \x1b", "[1A\x1b[2Kbuild #1 pas", "sed\x1b]0;ti", "tle\x07\n",
		"[00:01.200] │ \x1b[8mhidden\x1b[31mred", "\n", "\x1b[32mgreen", nuls, "\xe2\x82", "\x1b[3",
	}}
	e := newEnv(t, func(o *ServerOptions) { o.Recorder.(*countingRecorder).listeners = []listener{l} })
	stdin, env := postReceiveInput(e.bareRepo("app"), e.token("app", "alice"))
	stderr := newWatchWriter("")
	if code := RunClient(t.Context(), PostReceive, e.socket, stdin, stderr, env); code != 0 {
		t.Fatalf("post-receive exit %d: %s", code, stderr)
	}
	want := "slipway: recorded push #1 (1 ref)\n" +
		"[00:01.000] │ 50%\\r60%\n" +
		"[00:01.100] │ \\x1b[1A\\x1b[2Kbuild #1 passed\\x1b]0;title\\x07\n" +
		"[00:01.200] │ \\x1b[8mhidden\x1b[31mred\x1b[0m\n" +
		"\x1b[32mgreen" + strings.Repeat(`\x00`, 3*outChunk) + `\xe2\x82\x1b[3` + "\x1b[0m"
	if got := stderr.String(); got != want {
		t.Errorf("pusher saw (%d bytes)\n%.300q\nwant (%d bytes)\n%.300q", len(got), got, len(want), want)
	}
}
