package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/virtual-kubelet/virtual-kubelet/node/api"
)

// containerLog is where a started container's output goes; exited is
// closed once no process of it can write any more.
type containerLog struct {
	path   string
	exited chan struct{}
}

// openLog opens a container's log for the kubelet API. A follower reads
// until the container has exited and the file is read to its end, or until
// the request or the node ends.
func openLog(req, node context.Context, cl *containerLog, opts api.ContainerLogOpts) (io.ReadCloser, error) {
	f, err := os.Open(cl.path)
	if err != nil {
		return nil, fmt.Errorf("open container log: %w", err)
	}
	if opts.Tail > 0 {
		if err := seekTail(f, opts.Tail); err != nil {
			f.Close()
			return nil, err
		}
	}
	r := &logReader{f: f, req: req, node: node, follow: opts.Follow, exited: cl.exited, left: -1}
	if opts.LimitBytes > 0 {
		r.left = int64(opts.LimitBytes)
	}
	return r, nil
}

// seekTail positions f at the start of its last n lines.
func seekTail(f *os.File, n int) error {
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("read container log: %w", err)
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	pos := 0
	for i := 0; i < n; i++ {
		j := bytes.LastIndexByte(data[:end], '\n')
		if j < 0 {
			pos = 0
			break
		}
		pos, end = j+1, j
	}
	_, err = f.Seek(int64(pos), io.SeekStart)
	return err
}

type logReader struct {
	f         *os.File
	req, node context.Context
	follow    bool
	exited    <-chan struct{}
	left      int64 // bytes still allowed; -1 for no limit
}

func (r *logReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if r.left > 0 && int64(len(p)) > r.left {
		p = p[:r.left]
	}
	for {
		// Whether the container had ended is looked at before reading, so
		// that an EOF after it means everything written was read.
		ended := false
		select {
		case <-r.exited:
			ended = true
		default:
		}
		n, err := r.f.Read(p)
		if n > 0 {
			if r.left > 0 {
				r.left -= int64(n)
			}
			return n, nil
		}
		if err != io.EOF {
			return 0, err
		}
		if !r.follow || ended {
			return 0, io.EOF
		}
		select {
		case <-r.req.Done():
			return 0, r.req.Err()
		case <-r.node.Done():
			return 0, io.EOF
		case <-r.exited:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *logReader) Close() error { return r.f.Close() }
