package kube

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"slipway/build/executor"
	"slipway/build/kube/transfer"
)

func newFake(t *testing.T, objects ...runtime.Object) (*Executor, *fake.Clientset) {
	t.Helper()
	c := fake.NewClientset(objects...)
	e, err := New(Options{
		Client: c, Namespace: "ci", Instance: "i1", Image: "debian", HelperImage: "slipway-helper",
		Transfer: &transfer.Transfer{}, TransferURL: "http://127.0.0.1:1", TempDir: t.TempDir(),
		GracePeriod: time.Second, APIGrace: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

// The Pod runs as non-root with no privilege, no service account token,
// nothing of the environment in its spec, and a deadline from the timeout.
func TestPodShape(t *testing.T) {
	e, _ := newFake(t)
	const secret = "s3cr3t-value"
	job := executor.Job{
		ID: "42", Image: "golang:1.26", Steps: []string{"make", "make test"},
		Env:       []string{"PATH=/usr/bin:/bin", "TOKEN=" + secret},
		Timeout:   90 * time.Second,
		Artifacts: []string{"bin", "report.txt"}, MaxArtifactBytes: 1 << 20,
		Limits: executor.Limits{Memory: 512 << 20, Tmp: 8 << 20, Workspace: 64 << 20},
	}
	pod := e.pod(job, "slipway-build-42-abc")
	s := pod.Spec
	if s.RestartPolicy != corev1.RestartPolicyNever || s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
		t.Errorf("restart %q, automount %v", s.RestartPolicy, s.AutomountServiceAccountToken)
	}
	if s.ActiveDeadlineSeconds == nil || *s.ActiveDeadlineSeconds != 90+deadlineSlack {
		t.Errorf("activeDeadlineSeconds %v, want %d", s.ActiveDeadlineSeconds, 90+deadlineSlack)
	}
	if sc := s.SecurityContext; sc == nil || !*sc.RunAsNonRoot || *sc.RunAsUser == 0 {
		t.Errorf("pod security context %+v", sc)
	}
	if pod.Labels[LabelBuild] != "42" || pod.Labels[LabelInstance] != "i1" || len(pod.OwnerReferences) > 0 {
		t.Errorf("labels %v, owners %v", pod.Labels, pod.OwnerReferences)
	}
	var names []string
	for _, c := range s.InitContainers {
		names = append(names, c.Name+"="+c.Image)
	}
	if want := []string{"fetch=slipway-helper", "step-1=golang:1.26", "step-2=golang:1.26"}; !slices.Equal(names, want) {
		t.Errorf("init containers %v, want %v", names, want)
	}
	if c := s.Containers; len(c) != 1 || c[0].Name != uploadContainer ||
		!slices.Equal(c[0].Command, []string{transfer.HelperPath, "upload", workspacePath, "1048576", "bin", "report.txt"}) {
		t.Errorf("containers %+v", c)
	}
	for _, c := range append(slices.Clone(s.InitContainers), s.Containers...) {
		sc := c.SecurityContext
		if sc == nil || *sc.Privileged || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: security context %+v", c.Name, sc)
		}
		for _, v := range c.Env {
			if strings.Contains(v.Value, secret) {
				t.Errorf("%s: the secret is in the pod spec: %+v", c.Name, v)
			}
			if v.Name == transfer.EnvToken && v.ValueFrom == nil {
				t.Errorf("%s: the token is in the pod spec", c.Name)
			}
		}
		isStep := strings.HasPrefix(c.Name, "step-")
		hasToken := slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == transfer.EnvToken })
		if isStep == hasToken {
			t.Errorf("%s: token given %v; only the helper containers get it", c.Name, hasToken)
		}
		if isStep {
			if got := c.Resources.Limits.Memory().Value(); got != 512<<20 {
				t.Errorf("%s: memory limit %d", c.Name, got)
			}
			if !slices.Equal(c.Command, kubeletLiteral(append(slices.Clone(stepShell), job.Steps[c.Name[len(c.Name)-1]-'1']))) {
				t.Errorf("%s: command %q", c.Name, c.Command)
			}
		}
	}
	for _, v := range s.Volumes {
		if v.EmptyDir == nil {
			t.Errorf("volume %s is not an emptyDir", v.Name)
		}
		switch {
		case v.Name == workVolume && v.EmptyDir.SizeLimit.Value() != 64<<20:
			t.Errorf("workspace size %v", v.EmptyDir.SizeLimit)
		case strings.HasPrefix(v.Name, "tmp-") && (v.EmptyDir.Medium != corev1.StorageMediumMemory || v.EmptyDir.SizeLimit.Value() != 8<<20):
			t.Errorf("%s: %+v", v.Name, v.EmptyDir)
		}
	}
	sec := e.secret(job, pod.Name, "tok")
	if string(sec.Data[tokenKey]) != "tok" || string(sec.Data[envKey(1)]) != secret || sec.Labels[LabelBuild] != "42" {
		t.Errorf("secret %+v", sec)
	}
}

// Sweep deletes this instance's Pods and Secrets that no running job owns,
// and nothing of another instance's.
func TestSweep(t *testing.T) {
	obj := func(kind, name, instance string) runtime.Object {
		meta := metav1.ObjectMeta{Name: name, Namespace: "ci", Labels: map[string]string{LabelInstance: instance, LabelManagedBy: "slipway"}}
		if kind == "pod" {
			return &corev1.Pod{ObjectMeta: meta}
		}
		return &corev1.Secret{ObjectMeta: meta}
	}
	e, c := newFake(t,
		obj("pod", "mine-live", "i1"), obj("secret", "mine-live", "i1"),
		obj("pod", "mine-orphan", "i1"), obj("secret", "mine-orphan", "i1"),
		obj("pod", "theirs", "i2"), obj("secret", "theirs", "i2"),
	)
	e.track("mine-live")
	n, err := e.Sweep(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Sweep: %d, %v; want 2 deleted", n, err)
	}
	pods, _ := c.CoreV1().Pods("ci").List(t.Context(), metav1.ListOptions{})
	secrets, _ := c.CoreV1().Secrets("ci").List(t.Context(), metav1.ListOptions{})
	var left []string
	for _, p := range pods.Items {
		left = append(left, "pod/"+p.Name)
	}
	for _, s := range secrets.Items {
		left = append(left, "secret/"+s.Name)
	}
	slices.Sort(left)
	if want := []string{"pod/mine-live", "pod/theirs", "secret/mine-live", "secret/theirs"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// A create that fails leaves nothing behind: no Pod, no Secret, no valid
// token; an unreachable API server is an UnavailableError (the build can
// wait), a refusal is not.
func TestRunCreateFails(t *testing.T) {
	for _, c := range []struct {
		name        string
		err         error
		notReady    error // what /readyz answers
		unavailable bool
	}{
		{"refused connection", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, nil, true},
		{"service unavailable", apierrors.NewServiceUnavailable("etcd is down"), nil, true},
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New("no RBAC")), nil, false},
		// A starting API server refuses what its roles, not loaded yet,
		// will allow.
		{"forbidden while starting", apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "x", errors.New("RBAC: clusterrole not found")),
			apierrors.NewInternalError(errors.New("[-]informer-sync failed")), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, cs := newFake(t)
			asked := false
			e.ready = func(context.Context) error { asked = true; return c.notReady }
			cs.PrependReactor("create", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, c.err })
			job := executor.Job{ID: "7", Workspace: t.TempDir(), Steps: []string{"true"}, Artifacts: []string{"x"}, ArtifactsDir: filepath.Join(t.TempDir(), "out")}
			_, err := e.Run(t.Context(), job)
			var u *executor.UnavailableError
			if err == nil || errors.As(err, &u) != c.unavailable {
				t.Fatalf("Run: %v; want unavailable %v", err, c.unavailable)
			}
			if refused := apierrors.IsForbidden(err); refused != asked {
				t.Errorf("/readyz asked: %v, for an error that is a refusal: %v", asked, refused)
			}
			secrets, _ := cs.CoreV1().Secrets("ci").List(t.Context(), metav1.ListOptions{})
			if len(secrets.Items) != 0 {
				t.Errorf("a secret was left: %v", secrets.Items[0].Name)
			}
			if n := e.o.Transfer.Valid(); n != 0 {
				t.Errorf("%d tokens still valid", n)
			}
			if entries, _ := os.ReadDir(e.o.TempDir); len(entries) > 0 {
				t.Errorf("left in the temporary folder: %v", entries)
			}
		})
	}
}
