package kubetest

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// sandboxSpec is a container made concrete: what bwrap is to run.
type sandboxSpec struct {
	image        Image
	env          []string // NAME=value, the container's whole environment
	argv         []string
	uid, gid     uint32
	workDir      string
	readOnlyRoot bool
	mounts       []mount
}

type mount struct {
	src, dst string
	readOnly bool
}

// setupError keeps a container waiting with a reason, as the kubelet does.
type setupError struct {
	reason, message string
	retry           bool // the cause may go away (a Secret created later)
}

// setUp resolves a container's image, user, environment, command and
// mounts.
func (pr *podRun) setUp(c corev1.Container) (sandboxSpec, *setupError) {
	var spec sandboxSpec
	img, ok := lookupImage(pr.p.images, c.Image)
	if !ok {
		return spec, &setupError{reason: "ErrImagePull", message: fmt.Sprintf("kubetest node: image %q is not in the node's image map", c.Image)}
	}
	spec.image = img

	pr.mu.Lock()
	pod := pr.pod.DeepCopy()
	pr.mu.Unlock()
	podName := pod.Namespace + "/" + pod.Name

	// The user: the container's securityContext over the pod's; the image
	// default is root.
	var uid, gid *int64
	var nonRoot *bool
	if psc := pod.Spec.SecurityContext; psc != nil {
		uid, gid, nonRoot = psc.RunAsUser, psc.RunAsGroup, psc.RunAsNonRoot
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
		if sc.RunAsNonRoot != nil {
			nonRoot = sc.RunAsNonRoot
		}
		spec.readOnlyRoot = sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	}
	if nonRoot != nil && *nonRoot {
		// The kubelet's messages (pkg/kubelet/kuberuntime/security_context_others.go).
		if uid == nil {
			return spec, &setupError{reason: "CreateContainerConfigError",
				message: fmt.Sprintf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", podName, c.Name)}
		}
		if *uid == 0 {
			return spec, &setupError{reason: "CreateContainerConfigError",
				message: fmt.Sprintf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", podName, c.Name)}
		}
	}
	if uid != nil {
		spec.uid = uint32(*uid)
	}
	if gid != nil {
		spec.gid = uint32(*gid)
	}

	env, problem := pr.environment(pod, c)
	if problem != nil {
		return spec, problem
	}
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	lookup := func(name string) (string, bool) { v, ok := vars[name]; return v, ok }
	spec.env = env
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		spec.argv = append(spec.argv, expand(a, lookup))
	}
	if len(c.Command) == 0 {
		return spec, &setupError{reason: "CreateContainerError",
			message: "kubetest node: the container has no command (images have no entrypoint here)"}
	}

	volumes := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		volumes[v.Name] = true
	}
	for _, m := range c.VolumeMounts {
		if !volumes[m.Name] {
			return spec, &setupError{reason: "CreateContainerConfigError", message: fmt.Sprintf("volume %q not found", m.Name)}
		}
		src := filepath.Join(pr.dir, "volumes", m.Name)
		if m.SubPath != "" {
			sub := path.Clean(m.SubPath)
			if path.IsAbs(sub) || sub == ".." || strings.HasPrefix(sub, "../") {
				return spec, &setupError{reason: "CreateContainerConfigError", message: fmt.Sprintf("invalid subPath %q", m.SubPath)}
			}
			src = filepath.Join(src, sub)
			if err := os.MkdirAll(src, 0o777); err != nil {
				return spec, &setupError{reason: "CreateContainerConfigError", message: fmt.Sprintf("create subPath %q: %v", m.SubPath, err)}
			}
			os.Chmod(src, 0o777)
		}
		spec.mounts = append(spec.mounts, mount{src: src, dst: path.Clean(m.MountPath), readOnly: m.ReadOnly})
	}
	// Parents before children, so that a mount inside another lands on it.
	sort.SliceStable(spec.mounts, func(i, j int) bool {
		return strings.Count(spec.mounts[i].dst, "/") < strings.Count(spec.mounts[j].dst, "/")
	})
	spec.workDir = c.WorkingDir
	if spec.workDir != "" {
		// runc creates a missing working directory; do it in its volume.
		for i := len(spec.mounts) - 1; i >= 0; i-- {
			m := spec.mounts[i]
			if rel, err := filepath.Rel(m.dst, spec.workDir); err == nil && !strings.HasPrefix(rel, "..") {
				dir := filepath.Join(m.src, rel)
				if _, err := os.Stat(dir); os.IsNotExist(err) {
					os.MkdirAll(dir, 0o755)
					os.Lchown(dir, int(spec.uid), int(spec.gid))
				}
				break
			}
		}
	}
	return spec, nil
}

// environment is the container's whole environment: envFrom first, then
// env, with $(NAME) references expanded, and nothing else (no PATH unless
// given).
func (pr *podRun) environment(pod *corev1.Pod, c corev1.Container) ([]string, *setupError) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	secrets := map[string]*corev1.Secret{}
	getSecret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := pr.p.client.CoreV1().Secrets(pod.Namespace).Get(pr.ctx(), name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		secrets[name] = s
		return s, nil
	}
	configMaps := map[string]*corev1.ConfigMap{}
	getConfigMap := func(name string) (*corev1.ConfigMap, error) {
		if m, ok := configMaps[name]; ok {
			return m, nil
		}
		m, err := pr.p.client.CoreV1().ConfigMaps(pod.Namespace).Get(pr.ctx(), name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		configMaps[name] = m
		return m, nil
	}
	configError := func(err error) *setupError {
		return &setupError{reason: "CreateContainerConfigError", message: err.Error(), retry: true}
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s, err := getSecret(from.SecretRef.Name)
			if apierrors.IsNotFound(err) && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
				continue
			}
			if err != nil {
				return nil, configError(err)
			}
			for _, k := range sortedKeys(s.Data) {
				set(from.Prefix+k, string(s.Data[k]))
			}
		case from.ConfigMapRef != nil:
			m, err := getConfigMap(from.ConfigMapRef.Name)
			if apierrors.IsNotFound(err) && from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
				continue
			}
			if err != nil {
				return nil, configError(err)
			}
			keys := make([]string, 0, len(m.Data))
			for k := range m.Data {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				set(from.Prefix+k, m.Data[k])
			}
		}
	}
	lookup := func(name string) (string, bool) { v, ok := vals[name]; return v, ok }
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, lookup))
			continue
		}
		vf := e.ValueFrom
		switch {
		case vf.SecretKeyRef != nil:
			ref := vf.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			s, err := getSecret(ref.Name)
			if apierrors.IsNotFound(err) && optional {
				continue
			}
			if err != nil {
				return nil, configError(err)
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, configError(fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name))
			}
			set(e.Name, string(v))
		case vf.ConfigMapKeyRef != nil:
			ref := vf.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			m, err := getConfigMap(ref.Name)
			if apierrors.IsNotFound(err) && optional {
				continue
			}
			if err != nil {
				return nil, configError(err)
			}
			v, ok := m.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, configError(fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name))
			}
			set(e.Name, v)
		case vf.FieldRef != nil:
			v, ok := map[string]string{
				"metadata.name":           pod.Name,
				"metadata.namespace":      pod.Namespace,
				"metadata.uid":            string(pod.UID),
				"spec.nodeName":           pod.Spec.NodeName,
				"spec.serviceAccountName": pod.Spec.ServiceAccountName,
				"status.hostIP":           "127.0.0.1",
				"status.podIP":            "127.0.0.1",
			}[vf.FieldRef.FieldPath]
			if !ok {
				return nil, &setupError{reason: "CreateContainerConfigError",
					message: fmt.Sprintf("kubetest node: env %s: fieldRef %q is not supported", e.Name, vf.FieldRef.FieldPath)}
			}
			set(e.Name, v)
		default:
			return nil, &setupError{reason: "CreateContainerConfigError",
				message: fmt.Sprintf("kubetest node: env %s: this valueFrom is not supported", e.Name)}
		}
	}
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vals[k])
	}
	return env, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
