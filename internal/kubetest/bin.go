package kubetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Bins are the control plane's programs.
type Bins struct {
	Etcd      string
	APIServer string
}

// sourceDir is kubebin/, found through this file's path: the tests that use
// kubetest run in their own package's folder, and the nested module cannot
// be embedded (go:embed stops at a go.mod).
func sourceDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("find kubetest's source: no caller information")
	}
	dir := filepath.Join(filepath.Dir(file), "kubebin")
	if _, err := os.Stat(filepath.Join(dir, "build.sh")); err != nil {
		return "", fmt.Errorf("find kubetest's kubebin module (built with -trimpath?): %w", err)
	}
	return dir, nil
}

// BinDir is the folder the binaries are looked for and built in:
// $SLIPWAY_KUBE_BIN if set, else <os.UserCacheDir()>/slipway/kube-HASH, HASH
// being the first 12 hex digits of the SHA-256 of kubebin's go.mod, go.sum
// and etcd/main.go, so that a change of versions gets a folder of its own.
// kubebin/build.sh computes the same folder.
func BinDir() (string, error) {
	if dir := os.Getenv("SLIPWAY_KUBE_BIN"); dir != "" {
		return dir, nil
	}
	src, err := sourceDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", filepath.Join("etcd", "main.go")} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", fmt.Errorf("hash kubebin sources: %w", err)
		}
		h.Write(b)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the user cache folder: %w", err)
	}
	return filepath.Join(cache, "slipway", "kube-"+hex.EncodeToString(h.Sum(nil))[:12]), nil
}

// EnsureBinaries returns etcd and kube-apiserver from BinDir, building them
// with kubebin/build.sh when one is missing (about 15 minutes the first
// time). The build runs under an exclusive flock on BinDir/.lock, so that of
// several test processes asking at once one builds and the others wait and
// then use its result. The build's output goes to progress.
func EnsureBinaries(ctx context.Context, progress io.Writer) (Bins, error) {
	dir, err := BinDir()
	if err != nil {
		return Bins{}, err
	}
	bins := Bins{Etcd: filepath.Join(dir, "etcd"), APIServer: filepath.Join(dir, "kube-apiserver")}
	if bins.present() {
		return bins, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Bins{}, fmt.Errorf("create kube binaries folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return Bins{}, fmt.Errorf("open kube binaries lock: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := flock(ctx, lock); err != nil {
		return Bins{}, err
	}
	if bins.present() { // another process built them while this one waited
		return bins, nil
	}
	src, err := sourceDir()
	if err != nil {
		return Bins{}, err
	}
	fmt.Fprintf(progress, "kubetest: building etcd and kube-apiserver into %s (about 15 minutes the first time)\n", dir)
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(src, "build.sh"), dir)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Join(runtime.GOROOT(), "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Stdout, cmd.Stderr = progress, progress
	if err := cmd.Run(); err != nil {
		return Bins{}, fmt.Errorf("build kube binaries with %s: %w", filepath.Join(src, "build.sh"), err)
	}
	if !bins.present() {
		return Bins{}, fmt.Errorf("build.sh left no binaries in %s", dir)
	}
	return bins, nil
}

func (b Bins) present() bool {
	for _, p := range []string{b.Etcd, b.APIServer} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// flock takes an exclusive lock on f, giving up when ctx ends. flock(2)
// itself cannot be cancelled, so it is retried without blocking.
func flock(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the kube binaries build (lock %s): %w", f.Name(), context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}
