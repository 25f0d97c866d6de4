package kube

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"slipway/build/executor"
	"slipway/build/kube/transfer"
)

// The Pod's containers: fetch, one per step, then upload.
const (
	fetchContainer  = "fetch"
	uploadContainer = "upload"
	workVolume      = "work" // the workspace and the home, one size limit
	outVolume       = "out"  // where upload stages the artifacts
	tokenKey        = "token"
)

// stepShell runs a step, given as its last argument, with `sh -c` in a
// child of the container's first process: a container's first process is
// its PID namespace's init, to which the kernel delivers no signal it has
// no handler for, so a step that signals itself (`kill -TERM $$`) would
// live on there. The outer shell waits and exits with the step's status,
// 128+n for a signal n, as a local step reports it.
var stepShell = []string{"/bin/sh", "-c", `/bin/sh -c "$1"; s=$?; exit $s`, "slipway-step"}

// kubeletLiteral escapes args for the kubelet, which expands $(NAME) in a
// container's command with the container's variables and turns $$ into $:
// every $ doubled reaches the program as the one $ it was.
func kubeletLiteral(args []string) []string {
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "$", "$$")
	}
	return args
}

// stepContainer names step i's container (from 0): step-1, step-2, ...
func stepContainer(i int) string { return "step-" + strconv.Itoa(i+1) }

// envKey is the Secret's key of the job's i-th variable.
func envKey(i int) string { return "env-" + strconv.Itoa(i) }

// deadlineSlack is what a Pod's activeDeadlineSeconds adds to the job's
// timeout: the executor ends the job at its timeout itself; the deadline
// is the cluster's backstop for a Pod whose daemon is gone.
const deadlineSlack = 60

func (e *Executor) labels(job executor.Job) map[string]string {
	l := map[string]string{LabelInstance: e.o.Instance, LabelManagedBy: "slipway"}
	if job.ID != "" {
		l[LabelBuild] = job.ID
	}
	return l
}

// secret is the job's Secret: every variable of its environment (secrets
// among them: the Pod spec names only keys) and the transfer token, which
// only the helper containers get.
func (e *Executor) secret(job executor.Job, name, token string) *corev1.Secret {
	data := map[string][]byte{tokenKey: []byte(token)}
	for i, kv := range job.Env {
		_, v, _ := strings.Cut(kv, "=")
		data[envKey(i)] = []byte(v)
	}
	immutable := true
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.o.Namespace, Labels: e.labels(job)},
		Type:       corev1.SecretTypeOpaque,
		Immutable:  &immutable,
		Data:       data,
	}
}

// pod is the job's Pod, whose Secret is called name too.
func (e *Executor) pod(job executor.Job, name string) *corev1.Pod {
	image := job.Image
	if image == "" {
		image = e.o.Image
	}
	yes, no := true, false
	automount := e.o.MountToken
	work := corev1.EmptyDirVolumeSource{}
	if job.Limits.Workspace > 0 {
		work.SizeLimit = quantity(job.Limits.Workspace)
	}
	volumes := []corev1.Volume{
		{Name: workVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &work}},
		{Name: outVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	workMounts := []corev1.VolumeMount{
		{Name: workVolume, MountPath: workspacePath, SubPath: "workspace"},
		{Name: workVolume, MountPath: homePath, SubPath: "home"},
	}
	container := func(name, image string, command []string) corev1.Container {
		return corev1.Container{
			Name:       name,
			Image:      image,
			Command:    command,
			WorkingDir: workspacePath,
			SecurityContext: &corev1.SecurityContext{
				Privileged:               &no,
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   boolp(!e.o.WritableRoot),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			ImagePullPolicy:          corev1.PullIfNotPresent,
		}
	}
	helperEnv := []corev1.EnvVar{
		{Name: transfer.EnvURL, Value: e.o.TransferURL},
		{Name: transfer.EnvToken, ValueFrom: secretRef(name, tokenKey)},
	}

	fetch := container(fetchContainer, e.o.HelperImage, []string{transfer.HelperPath, "fetch", workspacePath})
	fetch.Env = helperEnv
	fetch.VolumeMounts = workMounts
	inits := []corev1.Container{fetch}

	var env []corev1.EnvVar
	for i, kv := range job.Env {
		k, _, _ := strings.Cut(kv, "=")
		env = append(env, corev1.EnvVar{Name: k, ValueFrom: secretRef(name, envKey(i))})
	}
	resources := corev1.ResourceRequirements{Requests: e.o.Requests.DeepCopy(), Limits: e.o.Limits.DeepCopy()}
	if job.Limits.Memory > 0 {
		if resources.Limits == nil {
			resources.Limits = corev1.ResourceList{}
		}
		resources.Limits[corev1.ResourceMemory] = *quantity(job.Limits.Memory)
	}
	for i, step := range job.Steps {
		c := container(stepContainer(i), image, kubeletLiteral(append(slices.Clone(stepShell), step)))
		c.Env = env
		c.Resources = resources
		tmp := corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
		if job.Limits.Tmp > 0 {
			tmp.SizeLimit = quantity(job.Limits.Tmp)
		}
		vol := "tmp-" + strconv.Itoa(i+1)
		volumes = append(volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{EmptyDir: &tmp}})
		c.VolumeMounts = append(append([]corev1.VolumeMount{}, workMounts...), corev1.VolumeMount{Name: vol, MountPath: tmpPath})
		inits = append(inits, c)
	}

	upload := container(uploadContainer, e.o.HelperImage,
		append([]string{transfer.HelperPath, "upload", workspacePath, strconv.FormatInt(job.MaxArtifactBytes, 10)}, job.Artifacts...))
	upload.Env = append(helperEnv, corev1.EnvVar{Name: "TMPDIR", Value: "/out"})
	upload.VolumeMounts = append(append([]corev1.VolumeMount{}, workMounts...), corev1.VolumeMount{Name: outVolume, MountPath: "/out"})

	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		AutomountServiceAccountToken:  &automount,
		ServiceAccountName:            e.o.ServiceAccount,
		EnableServiceLinks:            &no,
		NodeSelector:                  e.o.NodeSelector,
		Tolerations:                   e.o.Tolerations,
		Volumes:                       volumes,
		InitContainers:                inits,
		Containers:                    []corev1.Container{upload},
		TerminationGracePeriodSeconds: int64p(int64(math.Ceil(e.o.GracePeriod.Seconds()))),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   &yes,
			RunAsUser:      &e.o.RunAsUser,
			RunAsGroup:     &e.o.RunAsGroup,
			FSGroup:        &e.o.RunAsGroup,
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	if job.Timeout > 0 {
		spec.ActiveDeadlineSeconds = int64p(int64(math.Ceil(job.Timeout.Seconds())) + deadlineSlack)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.o.Namespace, Labels: e.labels(job)},
		Spec:       spec,
	}
}

func secretRef(name, key string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name},
		Key:                  key,
	}}
}

func boolp(b bool) *bool    { return &b }
func int64p(n int64) *int64 { return &n }

// describeWaiting says why a container waits, "" when it does not.
func describeWaiting(s *corev1.ContainerStatus) string {
	if s == nil || s.State.Waiting == nil {
		return ""
	}
	w := s.State.Waiting
	if w.Message == "" {
		return w.Reason
	}
	return fmt.Sprintf("%s: %s", w.Reason, w.Message)
}
