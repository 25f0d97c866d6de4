package kubetest

import (
	"os"
	"strings"
)

// Image is what a container of one image name sees as its filesystem:
// host paths bound read-only under a root that is read-only too. Only the
// pod's volumes (and /tmp, a private tmpfs, unless the container asks for
// readOnlyRootFilesystem) are writable.
type Image struct {
	Binds []Bind
}

// Bind shows the host path Host at Path in the sandbox, read-only. A Host
// that is a symbolic link (such as /bin -> usr/bin on merged-/usr systems)
// appears as the same link.
type Bind struct {
	Host string
	Path string // Host when empty
}

// HostImage is the host's /usr, /bin, /sbin, /lib, /lib64 and /etc (those
// that exist), read-only, then extra: a Debian-like image made of the
// machine's own programs. For the helper image, add for example
// Bind{Host: "/path/to/slipway", Path: "/usr/local/bin/slipway"}.
func HostImage(extra ...Bind) Image {
	var img Image
	for _, p := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc"} {
		if _, err := os.Lstat(p); err == nil {
			img.Binds = append(img.Binds, Bind{Host: p})
		}
	}
	img.Binds = append(img.Binds, extra...)
	return img
}

// lookupImage finds image in images: the exact name first, then the name
// without its tag or digest ("debian:13" and "debian@sha256:..." find
// "debian").
func lookupImage(images map[string]Image, image string) (Image, bool) {
	if img, ok := images[image]; ok {
		return img, true
	}
	name := image
	if i := strings.Index(name, "@"); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name = name[:i]
	}
	img, ok := images[name]
	return img, ok
}
