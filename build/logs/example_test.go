package logs_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"slipway/build/logs"
)

func Example() {
	dir, err := os.MkdirTemp("", "logs")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := logs.NewStore(dir)

	// The worker: one log per build, 10 MiB of output at most, the repo's
	// secrets masked. The step's stdout and stderr both go to the log.
	w, err := store.Create("17", 10<<20, []string{"s3cret-token"})
	if err != nil {
		panic(err)
	}
	w.Printf("== step 1/1: %s", "echo ...")
	step := exec.Command("sh", "-c", `echo "deploying with $TOKEN"; echo oops >&2`)
	step.Env = []string{"TOKEN=s3cret-token"}
	step.Stdout, step.Stderr = w, w
	if err := step.Run(); err != nil {
		panic(err)
	}
	w.Flush()
	w.Printf("== build passed")
	if err := w.Close(); err != nil {
		panic(err)
	}

	// Someone running `log 17 -f` over SSH.
	r, pw := io.Pipe()
	go func() { pw.CloseWithError(store.Follow(context.Background(), "17", 0, pw, true)) }()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		_, text, _ := strings.Cut(sc.Text(), "] ") // drop the "[00:00.003]" stamp
		if !strings.HasPrefix(text, "== log opened") {
			fmt.Println(text)
		}
	}
	// Output:
	// == step 1/1: echo ...
	// │ deploying with ***
	// │ oops
	// == build passed
}
