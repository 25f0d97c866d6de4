package kubetest

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// A build-shaped pod: a Secret's value arrives in the environment and
// nothing else does, init containers run in order and hand files on in an
// emptyDir, the log of the last container is followed live through the API
// server, and every status says how it ended.
func TestPodRunsInitContainersThenContainer(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := t.Context()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, Data: map[string][]byte{"token": []byte("s3cret value"), "user": []byte("bob")}}
	if _, err := shared.cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ws := []corev1.VolumeMount{{Name: "ws", MountPath: "/ws"}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "build"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			NodeSelector:  map[string]string{"slipway.test/pool": "main"},
			Volumes:       []corev1.Volume{{Name: "ws", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			InitContainers: []corev1.Container{
				{
					Name: "env", Image: "debian:13", Command: []string{"/usr/bin/env"},
					Env: []corev1.EnvVar{
						{Name: "EARLY", Value: "$(TOKEN) is not defined yet"},
						{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token"}}},
						{Name: "PLAIN", Value: "v-$(TOKEN)-$$(TOKEN)"},
					},
					EnvFrom: []corev1.EnvFromSource{{Prefix: "S_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}},
				},
				{
					Name: "step", Image: "debian", Command: []string{"/bin/sh", "-c", "pwd; echo built > out.txt"},
					Env:        []corev1.EnvVar{{Name: "PATH", Value: "/usr/bin:/bin"}},
					WorkingDir: "/ws/src", VolumeMounts: ws,
				},
			},
			Containers: []corev1.Container{{
				Name: "upload", Image: "debian", Command: []string{"/bin/sh", "-c", "echo first; sleep 2; cat /ws/src/out.txt; echo second"},
				Env: []corev1.EnvVar{{Name: "PATH", Value: "/usr/bin:/bin"}}, VolumeMounts: ws,
			}},
		},
	}
	w, err := shared.cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=build"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	createPod(t, ns, pod)

	// The states of "upload" as the API server shows them, in order.
	seen := make(chan []string, 1)
	go func() {
		var states []string
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || len(p.Status.ContainerStatuses) == 0 {
				continue
			}
			s := state(p.Status.ContainerStatuses[0])
			s = strings.Fields(s)[0]
			if len(states) == 0 || states[len(states)-1] != s {
				states = append(states, s)
			}
			if ended(p) {
				break
			}
		}
		seen <- states
	}()

	waitPod(t, ns, "build", 30*time.Second, "running upload", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	stream, err := shared.cs.CoreV1().Pods(ns).GetLogs("build", &corev1.PodLogOptions{Container: "upload", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var lines []string
	var firstAt, lastAt time.Time
	sc := bufio.NewScanner(stream)
	for sc.Scan() {
		if len(lines) == 0 {
			firstAt = time.Now()
		}
		lines = append(lines, sc.Text())
		lastAt = time.Now()
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("follow log: %v", err)
	}
	if want := []string{"first", "built", "second"}; !slices.Equal(lines, want) {
		t.Fatalf("followed log = %q, want %q", lines, want)
	}
	if gap := lastAt.Sub(firstAt); gap < time.Second {
		t.Errorf("\"first\" came only %s before the end: not followed live", gap)
	}

	p := waitPod(t, ns, "build", 30*time.Second, "ended", ended)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s, want Succeeded", p.Status.Phase)
	}
	for _, st := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		term := st.State.Terminated
		if term == nil || term.ExitCode != 0 || term.Reason != "Completed" || term.StartedAt.IsZero() || term.FinishedAt.IsZero() {
			t.Errorf("container %s: %s, want terminated 0 Completed with times", st.Name, state(st))
		}
	}
	if got := <-seen; !slices.Equal(got, []string{"waiting", "running", "terminated"}) {
		t.Errorf("upload went through %q, want waiting, running, terminated", got)
	}

	env := strings.Split(strings.TrimSpace(podLogs(t, ns, "build", "env")), "\n")
	slices.Sort(env)
	// bwrap sets PWD, as a shell would; nothing else may come from the host.
	want := []string{"EARLY=$(TOKEN) is not defined yet", "PLAIN=v-s3cret value-$(TOKEN)", "PWD=/", "S_token=s3cret value", "S_user=bob", "TOKEN=s3cret value"}
	if !slices.Equal(env, want) {
		t.Errorf("environment = %q, want exactly %q", env, want)
	}
	if got := podLogs(t, ns, "build", "step"); got != "/ws/src\n" {
		t.Errorf("step's log = %q, want its working directory", got)
	}
}

// A failing init container fails the pod; what follows never starts.
func TestFailingInitContainerFailsPod(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	pod := debianPod("fail", "echo never")
	pod.Spec.InitContainers = []corev1.Container{shContainer("one", "echo oops >&2; exit 3"), shContainer("two", "echo never")}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "fail", 30*time.Second, "ended", ended)
	if p.Status.Phase != corev1.PodFailed {
		t.Fatalf("phase %s, want Failed", p.Status.Phase)
	}
	term := p.Status.InitContainerStatuses[0].State.Terminated
	if term == nil || term.ExitCode != 3 || term.Reason != "Error" || term.StartedAt.IsZero() || term.FinishedAt.IsZero() {
		t.Fatalf("init container one: %s, want terminated 3 Error with times", state(p.Status.InitContainerStatuses[0]))
	}
	for _, st := range []corev1.ContainerStatus{p.Status.InitContainerStatuses[1], p.Status.ContainerStatuses[0]} {
		if st.State.Waiting == nil {
			t.Errorf("container %s: %s, want never started (waiting)", st.Name, state(st))
		}
	}
	if got := podLogs(t, ns, "fail", "one"); got != "oops\n" {
		t.Errorf("stderr in the log = %q, want \"oops\\n\"", got)
	}
}

// marked reports the host's processes whose command line holds marker.
func marked(marker string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), marker) {
			found = append(found, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// Deleting a pod gracefully kills all of its processes, a background child
// that ignores SIGTERM too (after the grace period), and removes the pod
// only once they are gone, also while the pod is in an init container
// (virtual-kubelet alone removed such a pod before its processes).
func TestGracefulDeleteKillsEveryProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, trap string
		init       bool
		atLeast    time.Duration
	}{
		{"sigterm", "", false, 0},
		// SIGKILL comes half a second before the grace period of 2 s ends.
		{"ignores-sigterm", "trap '' TERM; ", false, 1500 * time.Millisecond},
		{"in-init-container", "trap '' TERM; ", true, 1500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			secs := 300000 + rand.IntN(600000)
			marker := fmt.Sprintf("sleep %d", secs)
			script := fmt.Sprintf("%s%s & while :; do sleep 1; done", tc.trap, marker)
			pod := debianPod("victim", script)
			if tc.init {
				pod = debianPod("victim", "true")
				pod.Spec.InitContainers = []corev1.Container{shContainer("first", script)}
			}
			createPod(t, ns, pod)
			waitPod(t, ns, "victim", 30*time.Second, "running", func(p *corev1.Pod) bool {
				st := p.Status.ContainerStatuses
				if tc.init {
					st = p.Status.InitContainerStatuses
				}
				return len(st) == 1 && st[0].State.Running != nil
			})
			deadline := time.Now().Add(10 * time.Second)
			for len(marked(marker)) < 2 && time.Now().Before(deadline) { // sh -c and the child
				time.Sleep(50 * time.Millisecond)
			}
			if got := marked(marker); len(got) < 2 {
				t.Fatalf("processes with %q: %q, want the shell and its child", marker, got)
			}
			// The loop's sleep comes and goes: count until the pod's
			// processes have all been seen at once, or give up.
			var ours int
			for deadline := time.Now().Add(10 * time.Second); ours < 3 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				ours = 0
				for _, p := range shared.node.Processes() {
					if p.Namespace == ns {
						ours++
					}
				}
			}
			if ours < 3 {
				t.Errorf("Node.Processes lists %d processes of the pod, want init, shell, child and loop sleep", ours)
			}
			grace := int64(2)
			start := time.Now()
			if err := shared.cs.CoreV1().Pods(ns).Delete(t.Context(), "victim", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
				t.Fatal(err)
			}
			for {
				_, err := shared.cs.CoreV1().Pods(ns).Get(t.Context(), "victim", metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					break
				}
				if time.Since(start) > 20*time.Second {
					t.Fatalf("pod still there %s after a delete with grace 2 s", time.Since(start))
				}
				time.Sleep(100 * time.Millisecond)
			}
			gone := time.Since(start)
			if left := marked(marker); len(left) > 0 {
				t.Fatalf("processes left after the pod was deleted: %q", left)
			}
			if gone < tc.atLeast {
				t.Errorf("deleted after %s, before the grace period of a pod that ignores SIGTERM", gone)
			}
			if tc.atLeast == 0 && gone > 10*time.Second {
				t.Errorf("deleted after %s though its processes die on SIGTERM", gone)
			}
		})
	}
}

// An emptyDir that grows past its sizeLimit gets the pod evicted.
func TestEmptyDirSizeLimitEvicts(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	pod := debianPod("big", "head -c 4194304 /dev/zero > /data/f; echo wrote; sleep 60")
	limit := resource.MustParse("1Mi")
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "big", 30*time.Second, "ended", ended)
	want := `Usage of EmptyDir volume "data" exceeds the limit "1Mi". `
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "Evicted" || p.Status.Message != want {
		t.Fatalf("phase %s reason %q message %q, want Failed Evicted %q", p.Status.Phase, p.Status.Reason, p.Status.Message, want)
	}
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 137 {
		t.Errorf("container: %s, want terminated 137 (SIGKILL)", state(p.Status.ContainerStatuses[0]))
	}
}

// activeDeadlineSeconds ends a pod that runs too long.
func TestActiveDeadlineFailsPod(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	pod := debianPod("slow", "sleep 60")
	deadline := int64(2)
	pod.Spec.ActiveDeadlineSeconds = &deadline
	start := time.Now()
	createPod(t, ns, pod)
	p := waitPod(t, ns, "slow", 30*time.Second, "ended", ended)
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != "DeadlineExceeded" {
		t.Fatalf("phase %s reason %q, want Failed DeadlineExceeded", p.Status.Phase, p.Status.Reason)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("ended after %s, before its deadline of 2 s", took)
	}
	if term := p.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 137 {
		t.Errorf("container: %s, want terminated 137", state(p.Status.ContainerStatuses[0]))
	}
}

// runAsNonRoot refuses uid 0 as the kubelet does; another uid runs as that
// user and can write in an emptyDir.
func TestRunAsUser(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	yes := true
	root, user := int64(0), int64(1000)
	refused := debianPod("root", "id -u")
	refused.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsNonRoot: &yes, RunAsUser: &root}
	createPod(t, ns, refused)

	ok := debianPod("user", "id -u; id -g; echo hi > /data/f && ls -n /data/f | cut -d' ' -f3; touch /rootfs 2>/dev/null || echo read-only")
	ok.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &user, RunAsGroup: &user, RunAsNonRoot: &yes}
	ok.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	ok.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	createPod(t, ns, ok)

	p := waitPod(t, ns, "root", 30*time.Second, "refused", func(p *corev1.Pod) bool {
		w := p.Status.ContainerStatuses
		return len(w) == 1 && w[0].State.Waiting != nil && w[0].State.Waiting.Reason == "CreateContainerConfigError"
	})
	if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !strings.Contains(msg, "non-root") {
		t.Errorf("message %q does not say why", msg)
	}
	p = waitPod(t, ns, "user", 30*time.Second, "ended", ended)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("phase %s: %s\n%s", p.Status.Phase, states(p.Status.ContainerStatuses), podLogs(t, ns, "user", "main"))
	}
	if got := podLogs(t, ns, "user", "main"); got != "1000\n1000\n1000\nread-only\n" {
		t.Errorf("log = %q, want uid, gid, the file's owner 1000 and a read-only root", got)
	}
}

// An image the node does not have never starts; a missing Secret keeps a
// container waiting until it appears.
func TestContainerWaitsForImageAndSecret(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	noImage := debianPod("noimage", "true")
	noImage.Spec.Containers[0].Image = "registry.invalid/nothing:1"
	createPod(t, ns, noImage)
	noSecret := debianPod("nosecret", "echo $TOKEN")
	noSecret.Spec.Containers[0].Env = append(noSecret.Spec.Containers[0].Env, corev1.EnvVar{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "later"}, Key: "k"}}})
	createPod(t, ns, noSecret)
	waitingFor := func(reason string) func(*corev1.Pod) bool {
		return func(p *corev1.Pod) bool {
			w := p.Status.ContainerStatuses
			return len(w) == 1 && w[0].State.Waiting != nil && w[0].State.Waiting.Reason == reason
		}
	}
	waitPod(t, ns, "noimage", 30*time.Second, "waiting ErrImagePull", waitingFor("ErrImagePull"))
	waitPod(t, ns, "nosecret", 30*time.Second, "waiting CreateContainerConfigError", waitingFor("CreateContainerConfigError"))
	if _, err := shared.cs.CoreV1().Pods(ns).GetLogs("noimage", &corev1.PodLogOptions{}).DoRaw(t.Context()); err == nil {
		t.Error("logs of a container that never started: no error")
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later"}, Data: map[string][]byte{"k": []byte("arrived")}}
	if _, err := shared.cs.CoreV1().Secrets(ns).Create(t.Context(), secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, ns, "nosecret", 30*time.Second, "ended", ended)
	if p.Status.Phase != corev1.PodSucceeded || podLogs(t, ns, "nosecret", "main") != "arrived\n" {
		t.Errorf("phase %s, log %q; want Succeeded, \"arrived\"", p.Status.Phase, podLogs(t, ns, "nosecret", "main"))
	}
	if p := waitPod(t, ns, "noimage", time.Second, "still waiting", waitingFor("ErrImagePull")); p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}
}

// RBAC is real: a ServiceAccount's kubeconfig is refused until a Role
// allows it.
func TestServiceAccountKubeconfigAndRBAC(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	ctx := t.Context()
	path, err := shared.cluster.ServiceAccountKubeconfig(ctx, ns, "builder")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list pods without a role: %v, want forbidden", err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}}}
	if _, err := shared.cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pods"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "builder", Namespace: ns}}}
	if _, err := shared.cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("list pods with a role: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The API server goes away mid-pod and comes back on the same port: the
// pod finishes, its status and logs arrive, and new pods still run.
// Not parallel: the other tests would see the API server gone.
func TestAPIServerRestart(t *testing.T) {
	ns := namespace(t)
	createPod(t, ns, debianPod("across", "echo before; sleep 3; echo after"))
	waitPod(t, ns, "across", 30*time.Second, "running", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Running != nil
	})
	shared.cluster.Stop()
	if _, err := shared.cs.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{}); err == nil {
		t.Fatal("API server answers after Stop")
	}
	// The pod ends while nobody can hear it.
	for deadline := time.Now().Add(30 * time.Second); ; {
		left := 0
		for _, p := range shared.node.Processes() {
			if p.Namespace == ns {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod still runs %d processes", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := shared.cluster.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	p := waitPod(t, ns, "across", time.Minute, "ended", ended)
	if p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("phase %s, want Succeeded", p.Status.Phase)
	}
	if got := podLogs(t, ns, "across", "main"); got != "before\nafter\n" {
		t.Errorf("log = %q", got)
	}
	createPod(t, ns, debianPod("later", "echo again"))
	if p := waitPod(t, ns, "later", time.Minute, "ended", ended); p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod after restart: phase %s", p.Status.Phase)
	}
}

// A second node with its own labels gets only the pods that select it.
func TestNodeSelectorPicksNode(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	other := StartNode(t, shared.cluster, NodeOptions{Name: "kubetest-other", Labels: map[string]string{"slipway.test/pool": "other"}})
	pod := debianPod("there", "echo hi")
	pod.Spec.NodeSelector = map[string]string{"slipway.test/pool": "other"}
	createPod(t, ns, pod)
	p := waitPod(t, ns, "there", 30*time.Second, "ended", ended)
	if p.Spec.NodeName != other.Name || p.Status.Phase != corev1.PodSucceeded {
		t.Errorf("node %q phase %s, want %q Succeeded", p.Spec.NodeName, p.Status.Phase, other.Name)
	}
	nowhere := debianPod("nowhere", "echo hi")
	nowhere.Spec.NodeSelector = map[string]string{"slipway.test/pool": "none"}
	createPod(t, ns, nowhere)
	time.Sleep(time.Second) // nothing to wait for: a pod that stays unbound
	if p, _ := shared.cs.CoreV1().Pods(ns).Get(t.Context(), "nowhere", metav1.GetOptions{}); p == nil || p.Spec.NodeName != "" {
		t.Errorf("pod without a matching node was bound")
	}
}

// build.sh and the harness agree on the binaries' folder.
func TestBuildScriptFolder(t *testing.T) {
	t.Parallel()
	src, err := sourceDir()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", filepath.Join(src, "build.sh"), "--print-dir").Output()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != dir {
		t.Errorf("build.sh --print-dir = %q, BinDir = %q", got, dir)
	}
}
