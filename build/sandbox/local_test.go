package sandbox

import (
	"testing"

	"slipway/build/executor"
	"slipway/build/executor/executortest"
)

// The local executor passes the conformance suite on bubblewrap (as an
// unprivileged build uid when the tests run as root, as in CI) and on no
// sandbox at all.

func TestLocalBwrapConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, tmp string) executor.Executor {
		return &Local{Runner: newBwrap(), TempDir: tmp}
	})
}

func TestLocalNoneConformance(t *testing.T) {
	executortest.Run(t, func(t *testing.T, tmp string) executor.Executor {
		return &Local{Runner: None{}, TempDir: tmp}
	})
}
