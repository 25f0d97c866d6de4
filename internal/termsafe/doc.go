// Package termsafe renders untrusted text safe for a terminal: what builds,
// deployments and the targets they talk to print, and the pipeline file's
// command text, before it reaches a person's screen (`git push -o wait`,
// `log`, `log -f`, `log deploy`, listings).
//
// A terminal obeys the bytes it is sent. A step that prints a carriage
// return, cursor movement (ESC [1A, ESC [2K), an OSC (ESC ]0; sets the
// window title, ESC ]52; writes the clipboard) or hidden text (ESC [8m)
// can overwrite the lines around it and print a fake "build #12 passed"
// over a failure. So the filter keeps printable text (valid UTF-8), tabs,
// newlines and SGR colour sequences (ESC [ params m) whose every parameter
// only changes colour or weight, and shows everything else as a visible
// escape: "\x1b", "\r", "\x07", "\u009b", "\u202e", and "\xNN" for bytes
// that are not UTF-8. Only ESC itself is escaped, so the rest of a
// sequence stays readable as plain text: "\x1b]0;title\x07".
//
// What passes and why:
//   - SGR parameters 0-4 (reset, bold, faint, italic, underline), 7
//     (reverse), 9 (strike), 21-29 (their resets, 28 reveal), colours
//     30-49, 90-107 (38/48 with their 5;N or 2;R;G;B arguments, or in
//     colon form), 53/55 (overline), 58/59 (underline colour), and 4:N
//     (underline style). Refused, so escaped: 8 (conceal, hides text),
//     5 and 6 (blink: no build tool needs it, and blinking text is a way
//     to make a line unreadable), fonts and anything unknown.
//   - Colours end with their line: when a line set a colour, the filter
//     resets it before the newline, so no colour (say black on black) can
//     run into the lines that follow, which may be Slipway's own.
//   - A CR directly before LF is a plain line end (CRLF is how some tools
//     end lines); any other CR is shown as "\r".
//   - C1 controls (U+0080..U+009F, and a raw 0x9B byte, which some
//     terminals read as CSI), Unicode bidirectional controls (which reorder
//     what is displayed) and the line and paragraph separators are escaped.
//
// [Filter] is the streaming core: it keeps what a sequence split across
// writes needs (at most [MaxHeld] bytes) until the next write shows how it
// ends. [Writer] wraps an io.Writer with it. [Line] makes one field safe
// for a one-line place (a listing's cell, a log's step header), escaping
// tabs, newlines and every escape sequence too.
package termsafe
