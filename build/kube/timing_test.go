package kube

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"slipway/build/executor"
)

func TestTimingProbe(t *testing.T) {
	ns := namespace(t)
	e := newExecutor(t, t.TempDir(), ns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 20 {
		wg.Go(func() {
			ws := t.TempDir()
			t0 := time.Now()
			var marks []string
			mark := func(s string) { marks = append(marks, fmt.Sprintf("%s@%dms", s, time.Since(t0).Milliseconds())) }
			job := executor.Job{ID: fmt.Sprint(i), Workspace: ws, Steps: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, Timeout: time.Minute,
				Placed: func(string) { mark("placed") }, StepStarted: func(int) { mark("started") }, StepEnded: func(int, executor.StepResult) { mark("ended") }}
			_, err := e.Run(t.Context(), job)
			mark("returned")
			t.Logf("job %d: %v %v", i, marks, err)
		})
	}
	wg.Wait()
	t.Logf("8 jobs: %v", time.Since(start))
}
