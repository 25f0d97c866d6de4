// Package logs stores build and deployment logs on disk and streams them to
// people watching.
//
// A worker creates one log per build with [Store.Create] and connects the
// returned [Writer] to the steps' stdout and stderr; it writes its own lines
// ("== step 2/3: go test") with [Writer.Printf]. Anyone may read a log with
// [Store.Follow], while it is written (follow=true streams until the writer
// closes) or afterwards. Followers read the file, never a buffer shared with
// the writer, so a slow follower (a pusher on a bad line) cannot slow the
// build, and any number can watch at once.
//
// What is stored:
//   - Each line starts with the time elapsed since the log was opened,
//     "[mm:ss.mmm] " (minutes keep growing past 99). The first line says at
//     what wall-clock time (UTC) the log was opened, so the elapsed times
//     can be anchored. Elapsed time was chosen over wall-clock time because
//     it shows at a glance how long each step took. A line is stamped when
//     its first byte arrives, and bytes are written to the file as they
//     arrive, so a progress line without a newline shows up at once.
//   - Output lines carry [OutputMark] ("│ ") after their stamp; Slipway's
//     own lines never do, and are always one line with their control
//     characters escaped, even when they quote a step's command. Output is
//     stored as it was printed, escape sequences and all (`log ID --raw`
//     shows it so): whoever shows a log on a terminal passes it through
//     package termsafe, which makes every carriage return and cursor
//     movement visible, so a step cannot print a line that passes for
//     Slipway's.
//   - Secret values are replaced with "***" before anything reaches the
//     file, including a value split across two writes and, for multi-line
//     values, each line of the value on its own. A few bytes that could be
//     the start of a secret are held back until the next write shows whether
//     they are.
//   - Output past the size cap is counted and discarded: the log says where
//     it was cut and, when closed, how many bytes were dropped. Write keeps
//     reporting success so the step is not killed by a broken pipe.
package logs
