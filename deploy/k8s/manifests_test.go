// Package k8s_test renders every overlay under deploy/k8s with the kustomize
// API (as `make k8s` does) and checks what a cluster would get against what
// the programs rely on: probes on the admin port, grace periods longer than
// the shutdown timeouts, every referenced Secret and ConfigMap present and
// content-hashed, network policies that select the right pods, and KEDA
// triggers that read the runnable backlog of exactly the queues each worker
// class serves, from the API's autoscaling Service.
//
// Every rendered object is decoded strictly (unknown fields fail) into the
// Kubernetes API types, and the ScaledObjects into KEDA's own Go types.
// Production overlays render with their secrets/*.example files standing in
// for the real, never committed, secrets/ files, in memory.
package k8s_test

import (
	"bytes"
	"cmp"
	"fmt"
	"go/version"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/jobforge/jobforge/deploy/k8s"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/autoscale"
	"github.com/jobforge/jobforge/internal/config"
	"github.com/jobforge/jobforge/jobs/builtin"
)

const (
	// testImage is the image every overlay is rendered with.
	testImage = "registry.example/jobforge/jobforge@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	// workerGraceMargin is how much longer than JOBFORGE_SHUTDOWN_TIMEOUT a
	// worker pod's grace period must be: after the timeout the worker still
	// requeues unfinished jobs and closes its Redis connections.
	workerGraceMargin = 5 * time.Second

	// The Secrets every overlay generates (names before the content hash).
	redisSecret   = "jobforge-redis"
	apiKeysSecret = "jobforge-api-keys"

	// devToken is the dev overlay's documented API key.
	devToken = "jfk_dev.dev-overlay-not-a-secret"

	// The namespaces allowed to reach the admin and autoscaling ports.
	monitoringNamespace = "monitoring"
	kedaNamespace       = "keda"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// overlays is every overlay there must be, and what it must be.
var overlays = map[string]struct {
	namespace string
	sentinel  bool // the Redis connection is given as Sentinel settings
	cluster   bool // the Redis connection is given as Cluster settings
	redis     bool // runs its own Redis (jobforge-redis)
}{
	"dev":                 {namespace: "jobforge-dev", redis: true},
	"production":          {namespace: "jobforge"},
	"production-sentinel": {namespace: "jobforge", sentinel: true},
	"production-cluster":  {namespace: "jobforge", cluster: true},
}

// jobforgeDeployments are the programs' Deployments in every overlay.
var jobforgeDeployments = []struct {
	name    string
	program config.Program
	command string
	pools   string // JOBFORGE_POOLS as parsed, workers only
}{
	{name: "jobforge-api", program: config.API, command: "/api"},
	{name: "jobforge-worker-io", program: config.Worker, command: "/worker", pools: "io"},
	{name: "jobforge-worker-cpu", program: config.Worker, command: "/worker", pools: "cpu"},
}

// manifests is one rendered kustomization, decoded.
type manifests struct {
	name          string
	deployments   []*appsv1.Deployment
	services      []*corev1.Service
	secrets       []*corev1.Secret
	configMaps    []*corev1.ConfigMap
	policies      []*networkingv1.NetworkPolicy
	hpas          []*autoscalingv2.HorizontalPodAutoscaler
	pdbs          []*policyv1.PodDisruptionBudget
	scaledObjects []*kedav1alpha1.ScaledObject
	namespaces    []*corev1.Namespace
	all           []metav1.Object // every object but the namespaces
}

// apiVersions are the kinds the manifests may hold, with their versions.
var apiVersions = map[string]string{
	"Deployment":              "apps/v1",
	"Service":                 "v1",
	"Secret":                  "v1",
	"ConfigMap":               "v1",
	"Namespace":               "v1",
	"NetworkPolicy":           "networking.k8s.io/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"PodDisruptionBudget":     "policy/v1",
	"ScaledObject":            "keda.sh/v1alpha1",
}

// decode decodes every rendered object strictly into its Go type.
func decode(name string, objects [][]byte) (*manifests, error) {
	m := &manifests{name: name}
	for _, y := range objects {
		var tm metav1.TypeMeta
		if err := sigsyaml.Unmarshal(y, &tm); err != nil {
			return nil, err
		}
		if want, ok := apiVersions[tm.Kind]; !ok || tm.APIVersion != want {
			return nil, fmt.Errorf("%s: unexpected %s %s (add it to apiVersions and check it)", name, tm.APIVersion, tm.Kind)
		}
		var obj metav1.Object
		switch tm.Kind {
		case "Deployment":
			obj = add(&m.deployments)
		case "Service":
			obj = add(&m.services)
		case "Secret":
			obj = add(&m.secrets)
		case "ConfigMap":
			obj = add(&m.configMaps)
		case "Namespace":
			obj = add(&m.namespaces)
		case "NetworkPolicy":
			obj = add(&m.policies)
		case "HorizontalPodAutoscaler":
			obj = add(&m.hpas)
		case "PodDisruptionBudget":
			obj = add(&m.pdbs)
		case "ScaledObject":
			obj = add(&m.scaledObjects)
		}
		if err := sigsyaml.UnmarshalStrict(y, obj); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, tm.Kind, err)
		}
		if tm.Kind != "Namespace" {
			m.all = append(m.all, obj)
		}
	}
	return m, nil
}

func add[T any](list *[]*T) metav1.Object {
	v := new(T)
	*list = append(*list, v)
	return any(v).(metav1.Object)
}

// render renders target ("base" or "overlays/<name>") with the test image
// and the example secrets, edited by edit when it is not nil.
func render(target string, edit func(fsys filesys.FileSystem, root string) error) (*manifests, error) {
	m, err := k8s.Render(k8s.Options{Dir: ".", Target: target, Image: testImage, ExampleSecrets: true, Edit: edit})
	if err != nil {
		return nil, err
	}
	var objects [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		objects = append(objects, y)
	}
	return decode(path.Base(target), objects)
}

// renderAll renders base and every overlay once for all tests.
var renderAll = sync.OnceValues(func() (map[string]*manifests, error) {
	names, err := k8s.Overlays(".")
	if err != nil {
		return nil, err
	}
	out := map[string]*manifests{}
	for _, target := range append([]string{"base"}, names...) {
		if target != "base" {
			target = "overlays/" + target
		}
		m, err := render(target, nil)
		if err != nil {
			return nil, err
		}
		out[path.Base(target)] = m
	}
	return out, nil
})

// rendered returns every rendered overlay by name (not base).
func rendered(t *testing.T) map[string]*manifests {
	t.Helper()
	all, err := renderAll()
	require.NoError(t, err)
	out := maps.Clone(all)
	delete(out, "base")
	return out
}

// forEachOverlay runs f on every rendered overlay in a parallel subtest.
func forEachOverlay(t *testing.T, f func(t *testing.T, m *manifests)) {
	t.Helper()
	all := rendered(t)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f(t, all[name])
		})
	}
}

func find[T metav1.Object](t *testing.T, list []T, name string) T {
	t.Helper()
	for _, o := range list {
		if o.GetName() == name {
			return o
		}
	}
	require.Failf(t, "missing object", "no %T named %q", *new(T), name)
	return *new(T)
}

// hashed matches the names kustomize's generators give: the name, a dash and
// ten characters of a hash of the content (in kustomize's alphabet, which
// leaves out vowels and look-alike digits).
var hashed = regexp.MustCompile(`^(.+)-[bcdfghkmt2-9]{10}$`)

// generated returns the generated object whose name before the hash is base.
func generated[T metav1.Object](t *testing.T, list []T, base string) T {
	t.Helper()
	for _, o := range list {
		if m := hashed.FindStringSubmatch(o.GetName()); m != nil && m[1] == base {
			return o
		}
	}
	require.Failf(t, "missing object", "no generated %T %q (with a content hash)", *new(T), base)
	return *new(T)
}

func (m *manifests) secret(t *testing.T, name string) *corev1.Secret {
	t.Helper()
	return find(t, m.secrets, name)
}

func (m *manifests) configMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	return find(t, m.configMaps, name)
}

// env resolves a container's environment the way the kubelet would, from
// the rendered ConfigMaps and Secrets. A reference to a missing object or
// key fails the test (unless marked optional).
func env(t *testing.T, m *manifests, c corev1.Container) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			if optional(ef.ConfigMapRef.Optional) && !slices.ContainsFunc(m.configMaps, named[*corev1.ConfigMap](ef.ConfigMapRef.Name)) {
				continue
			}
			for k, v := range m.configMap(t, ef.ConfigMapRef.Name).Data {
				out[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			if optional(ef.SecretRef.Optional) && !slices.ContainsFunc(m.secrets, named[*corev1.Secret](ef.SecretRef.Name)) {
				continue
			}
			for k, v := range m.secret(t, ef.SecretRef.Name).Data {
				out[ef.Prefix+k] = string(v)
			}
		default:
			require.Failf(t, "bad envFrom", "container %s: envFrom with neither configMapRef nor secretRef", c.Name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := m.secret(t, ref.Name).Data[ref.Key]
			require.True(t, ok || optional(ref.Optional), "container %s: %s: Secret %s has no key %s", c.Name, e.Name, ref.Name, ref.Key)
			out[e.Name] = string(v)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := m.configMap(t, ref.Name).Data[ref.Key]
			require.True(t, ok || optional(ref.Optional), "container %s: %s: ConfigMap %s has no key %s", c.Name, e.Name, ref.Name, ref.Key)
			out[e.Name] = v
		default:
			out[e.Name] = "" // fieldRef / resourceFieldRef: not the programs' settings
		}
	}
	return out
}

func optional(b *bool) bool { return b != nil && *b }

func named[T metav1.Object](name string) func(T) bool {
	return func(o T) bool { return o.GetName() == name }
}

// programEnv is what a program makes of an environment: its parsed config,
// plus the environment variables it reads at all.
func programEnv(t *testing.T, p config.Program, vars map[string]string) (config.Config, []string) {
	t.Helper()
	var usage bytes.Buffer
	_, err := config.Load(p, "program", []string{"-h"}, func(string) string { return "" }, &usage)
	require.Error(t, err)
	var known []string
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)`).FindAllStringSubmatch(usage.String(), -1) {
		known = append(known, m[1])
	}
	require.NotEmpty(t, known, "cannot read the environment variables from the usage text")
	cfg, err := config.Load(p, "program", nil, func(k string) string { return vars[k] }, &bytes.Buffer{})
	require.NoError(t, err, "the program rejects its environment")
	return cfg, known
}

// program returns a jobforge Deployment's container and its parsed config.
func program(t *testing.T, m *manifests, name string, p config.Program) (*appsv1.Deployment, corev1.Container, config.Config) {
	t.Helper()
	d := find(t, m.deployments, name)
	require.Len(t, d.Spec.Template.Spec.Containers, 1, "%s", name)
	c := d.Spec.Template.Spec.Containers[0]
	cfg, _ := programEnv(t, p, env(t, m, c))
	return d, c, cfg
}

func portNumber(t *testing.T, c corev1.Container, port intstr.IntOrString) int32 {
	t.Helper()
	n, ok := lookupPort(c, port)
	require.True(t, ok, "container %s has no port named %q", c.Name, port.StrVal)
	return n
}

func lookupPort(c corev1.Container, port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, true
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

func namedPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	return portNumber(t, c, intstr.FromString(name))
}

func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.ParseInt(p, 10, 32)
	require.NoError(t, err)
	return int32(n)
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return s.Matches(labels.Set(podLabels))
}

// serviceSelects reports whether a Service sends traffic to pods with these
// labels (a Service without a selector has no automatic endpoints).
func serviceSelects(t *testing.T, svc *corev1.Service, podLabels map[string]string) bool {
	t.Helper()
	require.NotEmpty(t, svc.Spec.Selector, "Service %s has no selector", svc.Name)
	return selects(t, &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, podLabels)
}

// served returns the queues a worker's pools take jobs from.
func served(cfg config.Config) []string {
	var out []string
	for _, pool := range cfg.Pools {
		qs := cfg.Queues
		if pool == "cpu" {
			qs = cfg.CPUQueues
		}
		out = append(out, slices.Collect(maps.Keys(qs))...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// cpuSlots is a cpu-pool pod's slots: one per whole core of its CPU limit
// (JOBFORGE_CPU_CONCURRENCY stays unset, and GOMAXPROCS follows the limit).
func cpuSlots(t *testing.T, c corev1.Container) int {
	t.Helper()
	lim := c.Resources.Limits.Cpu()
	require.False(t, lim.IsZero(), "container %s: no CPU limit", c.Name)
	require.Zero(t, lim.MilliValue()%1000, "cpu limit %s is not a whole number of cores", lim)
	return int(lim.Value())
}

func TestOverlays(t *testing.T) {
	t.Parallel()
	require.ElementsMatch(t, slices.Collect(maps.Keys(overlays)), slices.Collect(maps.Keys(rendered(t))),
		"overlays/ and this test's table disagree")
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		want := overlays[m.name]
		require.Len(t, m.namespaces, 1)
		ns := m.namespaces[0]
		require.Equal(t, want.namespace, ns.Name)
		require.Equal(t, "restricted", ns.Labels["pod-security.kubernetes.io/enforce"], "the pods are hardened for the restricted level")
		for _, o := range m.all {
			require.Equal(t, want.namespace, o.GetNamespace(), "%T %s", o, o.GetName())
		}

		// One Redis connection for every program, from the Secret alone:
		// a single Redis as REDIS_URL, or Sentinel or Cluster setting by
		// setting.
		redis := generated(t, m.secrets, redisSecret).Data
		for _, cm := range m.configMaps {
			for k := range cm.Data {
				require.False(t, strings.HasPrefix(k, "REDIS_") || strings.HasPrefix(k, "JOBFORGE_REDIS_"),
					"ConfigMap %s holds %s: Redis settings (and their passwords) belong in the Secret", cm.Name, k)
			}
		}
		for _, d := range jobforgeDeployments {
			_, c, cfg := program(t, m, d.name, d.program)
			require.Equal(t, want.sentinel, cfg.RedisSentinel(), "%s: Redis topology", d.name)
			require.Equal(t, want.cluster, cfg.RedisCluster(), "%s: Redis topology", d.name)
			if want.cluster {
				if d.program == config.API {
					require.Equal(t, 1, cfg.RedisMinReplicas,
						"each master has one replica: a create waits for it, so a failover loses nothing acknowledged")
				}
				require.Empty(t, cfg.RedisURL)
				require.NotContains(t, redis, "REDIS_URL")
				require.NotEmpty(t, cfg.RedisClusterAddrs, "the Cluster's seed nodes")
				require.Equal(t, strings.Split(string(redis["JOBFORGE_REDIS_CLUSTER_ADDRS"]), ","), cfg.RedisClusterAddrs,
					"the seed nodes come from the Secret")
				for _, a := range cfg.RedisClusterAddrs {
					host, _, err := net.SplitHostPort(a)
					require.NoError(t, err, "seed node %q", a)
					require.NotEmpty(t, host, "seed node %q", a)
					require.Positive(t, addrPort(t, a), "seed node %q", a)
				}
				require.Zero(t, cfg.RedisDB, "a Cluster has only database 0")
				require.NotEmpty(t, cfg.RedisPassword, "the nodes have a password")
				require.Equal(t, string(redis["JOBFORGE_REDIS_PASSWORD"]), cfg.RedisPassword, "the nodes' password comes from the Secret")
				require.False(t, slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
					return e.Name == "JOBFORGE_REDIS_PASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil)
				}), "%s: JOBFORGE_REDIS_PASSWORD set in the manifest, not from a Secret", d.name)
				continue
			}
			if want.sentinel {
				if d.program == config.API {
					require.GreaterOrEqual(t, cfg.RedisMinReplicas, 1, "with replicas, a create waits for one: a failover loses nothing acknowledged")
				}
				require.Empty(t, cfg.RedisURL)
				require.NotContains(t, redis, "REDIS_URL")
				require.NotEmpty(t, cfg.RedisSentinelPassword, "the sentinels have a password of their own")
				require.NotEmpty(t, cfg.RedisPassword, "the master has a password")
				continue
			}
			u, err := url.Parse(cfg.RedisURL)
			require.NoError(t, err)
			require.Contains(t, []string{"redis", "rediss"}, u.Scheme)
			pw, _ := u.User.Password()
			require.NotEmpty(t, pw, "Redis without a password")
		}

		// The overlay's own Redis, if any, has the password the programs use.
		if want.redis {
			d := find(t, m.deployments, "jobforge-redis")
			serverEnv := env(t, m, d.Spec.Template.Spec.Containers[0])
			u, err := url.Parse(string(redis["REDIS_URL"]))
			require.NoError(t, err)
			pw, _ := u.User.Password()
			require.Equal(t, serverEnv["REDIS_PASSWORD"], pw, "the programs and the Redis server disagree on the password")
			svc := find(t, m.services, u.Hostname())
			require.True(t, serviceSelects(t, svc, d.Spec.Template.Labels))
			require.Equal(t, u.Port(), strconv.Itoa(int(svc.Spec.Ports[0].Port)))
		} else {
			require.False(t, slices.ContainsFunc(m.deployments, named[*appsv1.Deployment]("jobforge-redis")))
		}
	})
}

// TestBaseIsNamespaceAgnostic checks that base leaves the namespace and
// the secrets to the overlays.
func TestBaseIsNamespaceAgnostic(t *testing.T) {
	t.Parallel()
	all, err := renderAll()
	require.NoError(t, err)
	base := all["base"]
	require.Empty(t, base.namespaces, "namespaces belong in overlays")
	require.Empty(t, base.secrets, "secrets belong in overlays")
	for _, o := range base.all {
		require.Empty(t, o.GetNamespace(), "%T %s sets a namespace", o, o.GetName())
	}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		var jobforge []string
		for _, d := range m.deployments {
			if d.Labels["app.kubernetes.io/name"] == "jobforge" {
				jobforge = append(jobforge, d.Name)
			}
		}
		var want []string
		for _, d := range jobforgeDeployments {
			want = append(want, d.name)
		}
		require.ElementsMatch(t, want, jobforge, "a jobforge Deployment without a test case")

		for _, tt := range jobforgeDeployments {
			t.Run(tt.name, func(t *testing.T) {
				d := find(t, m.deployments, tt.name)
				tmpl := d.Spec.Template
				require.True(t, selects(t, d.Spec.Selector, tmpl.Labels), "selector does not match the pod labels")
				require.Len(t, tmpl.Spec.Containers, 1)
				c := tmpl.Spec.Containers[0]
				require.Equal(t, testImage, c.Image, "the image is set when rendering")
				require.Equal(t, []string{tt.command}, c.Command)

				vars := env(t, m, c)
				cfg, known := programEnv(t, tt.program, vars)
				for k := range vars {
					if strings.HasPrefix(k, "JOBFORGE_") || k == "REDIS_URL" {
						require.Contains(t, known, k, "%s does not read %s", tt.command, k)
					}
				}

				// Probes on the admin port: the public ports may speak TLS.
				admin := addrPort(t, cfg.AdminAddr)
				require.Equal(t, admin, namedPort(t, c, "admin"), "JOBFORGE_ADMIN_ADDR and the admin container port")
				for _, p := range []struct {
					kind, path string
					probe      *corev1.Probe
				}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
					require.NotNil(t, p.probe, "no %s probe", p.kind)
					require.NotNil(t, p.probe.HTTPGet, "%s probe is not httpGet", p.kind)
					require.Equal(t, p.path, p.probe.HTTPGet.Path, "%s probe path", p.kind)
					require.Equal(t, admin, portNumber(t, c, p.probe.HTTPGet.Port), "%s probe port", p.kind)
					require.Contains(t, []corev1.URIScheme{"", corev1.URISchemeHTTP}, p.probe.HTTPGet.Scheme)
				}
				ann := tmpl.Annotations
				require.Equal(t, "true", ann["prometheus.io/scrape"])
				require.Equal(t, strconv.Itoa(int(admin)), ann["prometheus.io/port"])
				require.Equal(t, "/metrics", ann["prometheus.io/path"])

				require.NotEmpty(t, tmpl.Spec.TopologySpreadConstraints)
				for _, tsc := range tmpl.Spec.TopologySpreadConstraints {
					require.True(t, selects(t, tsc.LabelSelector, tmpl.Labels), "topology spread on %s does not select the pods", tsc.TopologyKey)
				}

				require.NotNil(t, tmpl.Spec.TerminationGracePeriodSeconds, "terminationGracePeriodSeconds unset (default 30s)")
				grace := time.Duration(*tmpl.Spec.TerminationGracePeriodSeconds) * time.Second
				switch tt.program {
				case config.API:
					require.Equal(t, namedPort(t, c, "http"), addrPort(t, cfg.HTTPAddr), "JOBFORGE_HTTP_ADDR and the http container port")
					require.Equal(t, namedPort(t, c, "grpc"), addrPort(t, cfg.GRPCAddr), "JOBFORGE_GRPC_ADDR and the grpc container port")
					require.Equal(t, namedPort(t, c, "autoscaling"), addrPort(t, cfg.AutoscalingAddr), "JOBFORGE_AUTOSCALING_ADDR and the autoscaling container port")
					require.GreaterOrEqual(t, cfg.DrainDelay, time.Second, "JOBFORGE_DRAIN_DELAY: endpoints need time to drop a terminating pod")
					require.Greater(t, grace, cfg.DrainDelay+cfg.ShutdownTimeout, "grace period must cover JOBFORGE_DRAIN_DELAY + JOBFORGE_SHUTDOWN_TIMEOUT")
					apiKeysMounted(t, m, tmpl.Spec, c, cfg)
				case config.Worker:
					require.Equal(t, tt.pools, strings.Join(cfg.Pools, ","), "JOBFORGE_POOLS")
					require.GreaterOrEqual(t, grace, cfg.ShutdownTimeout+workerGraceMargin,
						"grace period must outlast JOBFORGE_SHUTDOWN_TIMEOUT, or running jobs are killed instead of requeued")
					// Long jobs survive scale-in and rollouts: the drain
					// lasts as long as the longest built-in job it serves.
					queues := served(cfg)
					for _, ty := range builtin.Types() {
						if slices.Contains(queues, ty.Queue()) {
							require.GreaterOrEqual(t, cfg.ShutdownTimeout, ty.Timeout(),
								"JOBFORGE_SHUTDOWN_TIMEOUT is shorter than the %s jobs' timeout: a rollout would cut them short", ty.Name())
						}
					}
					// SIGTERM itself stops fetching; a preStop hook would
					// only delay it and eat into the grace period.
					require.True(t, c.Lifecycle == nil || c.Lifecycle.PreStop == nil, "workers need no preStop hook")
					require.Len(t, c.Ports, 1, "a worker serves only its admin port")
				}

				if slices.Contains(cfg.Pools, "cpu") && tt.program == config.Worker {
					// One slot per core: GOMAXPROCS follows the CPU limit.
					require.NotContains(t, vars, "JOBFORGE_CPU_CONCURRENCY", "leave it unset: one slot per core")
					req, lim := c.Resources.Requests, c.Resources.Limits
					require.True(t, req.Cpu().Equal(*lim.Cpu()), "cpu requests and limits differ")
					require.True(t, req.Memory().Equal(*lim.Memory()), "memory requests = limits for Guaranteed QoS")
					require.Positive(t, cpuSlots(t, c))
				}
			})
		}
	})
}

// apiKeysMounted checks that JOBFORGE_API_KEYS_FILE is a file of the
// mounted API keys Secret and that the API accepts its keys.
func apiKeysMounted(t *testing.T, m *manifests, spec corev1.PodSpec, c corev1.Container, cfg config.Config) {
	t.Helper()
	require.NotEmpty(t, cfg.APIKeysFile, "the API refuses to start without an authentication method")
	dir, file := path.Split(cfg.APIKeysFile)
	i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return path.Clean(vm.MountPath) == path.Clean(dir) })
	require.GreaterOrEqual(t, i, 0, "nothing is mounted at %s", dir)
	vm := c.VolumeMounts[i]
	require.Empty(t, vm.SubPath, "a subPath mount never sees Secret updates")
	j := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
	require.GreaterOrEqual(t, j, 0)
	vol := spec.Volumes[j]
	require.NotNil(t, vol.Secret, "the API keys come from a Secret")
	s := m.secret(t, vol.Secret.SecretName)
	require.Regexp(t, hashed, s.Name)
	require.Equal(t, apiKeysSecret, hashed.FindStringSubmatch(s.Name)[1])
	require.Contains(t, s.Data, file, "Secret %s has no key %s", s.Name, file)
	keysFile := filepath.Join(t.TempDir(), file)
	require.NoError(t, os.WriteFile(keysFile, s.Data[file], 0o600))
	keys, err := auth.LoadKeys(keysFile)
	require.NoError(t, err)
	_, err = auth.New(keys, nil)
	require.NoError(t, err, "the API rejects the keys")
	if m.name == "dev" {
		// The documented dev key opens the dev API with full access.
		want := auth.HashedKey(devToken, "dev", "dev", []string{auth.ScopeJobsRead, auth.ScopeJobsWrite, auth.ScopeJobsCancel, auth.ScopeAdmin})
		require.Contains(t, keys, want, "the dev overlay's key is not the documented %s", devToken)
	}
}

// TestReferences checks that every Secret and ConfigMap a pod refers to
// exists in the overlay and carries a content hash in its name, so that
// changing one rolls the pods that use it.
func TestReferences(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, o := range slices.Concat(objects(m.secrets), objects(m.configMaps)) {
			require.Regexp(t, hashed, o.GetName(), "%T %s has no content hash: changing it would not roll the pods", o, o.GetName())
		}
		for _, d := range m.deployments {
			spec := d.Spec.Template.Spec
			for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
				env(t, m, c) // fails on a missing object or key
				for _, vm := range c.VolumeMounts {
					require.True(t, slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name }),
						"%s: container %s mounts unknown volume %s", d.Name, c.Name, vm.Name)
				}
			}
			for _, v := range spec.Volumes {
				switch {
				case v.Secret != nil:
					s := m.secret(t, v.Secret.SecretName)
					for _, it := range v.Secret.Items {
						require.Contains(t, s.Data, it.Key, "%s: volume %s", d.Name, v.Name)
					}
				case v.ConfigMap != nil:
					cm := m.configMap(t, v.ConfigMap.Name)
					for _, it := range v.ConfigMap.Items {
						require.Contains(t, cm.Data, it.Key, "%s: volume %s", d.Name, v.Name)
					}
				case v.Projected != nil:
					for _, src := range v.Projected.Sources {
						if src.Secret != nil {
							m.secret(t, src.Secret.Name)
						}
						if src.ConfigMap != nil {
							m.configMap(t, src.ConfigMap.Name)
						}
					}
				}
			}
		}
	})
}

func objects[T metav1.Object](list []T) []metav1.Object {
	out := make([]metav1.Object, len(list))
	for i, o := range list {
		out[i] = o
	}
	return out
}

// TestSecretChangesRollPods renders each overlay again with one Secret's
// source changed, and expects the pod template of every Deployment that
// uses it to change with it.
func TestSecretChangesRollPods(t *testing.T) {
	t.Parallel()
	tests := []struct {
		overlay string
		file    string // relative to the overlay; the rendered copy is edited
		rolls   []string
	}{
		{overlay: "dev", file: "api-keys.json", rolls: []string{"jobforge-api"}},
		{overlay: "production", file: "secrets/redis.env", rolls: []string{"jobforge-api", "jobforge-worker-io", "jobforge-worker-cpu"}},
		{overlay: "production", file: "secrets/api-keys.json", rolls: []string{"jobforge-api"}},
		{overlay: "production-sentinel", file: "secrets/redis.env", rolls: []string{"jobforge-api", "jobforge-worker-io", "jobforge-worker-cpu"}},
		{overlay: "production-cluster", file: "secrets/redis.env", rolls: []string{"jobforge-api", "jobforge-worker-io", "jobforge-worker-cpu"}},
	}
	all := rendered(t)
	for _, tt := range tests {
		t.Run(tt.overlay+"/"+tt.file, func(t *testing.T) {
			t.Parallel()
			before := all[tt.overlay]
			after, err := render("overlays/"+tt.overlay, func(fsys filesys.FileSystem, root string) error {
				p := path.Join(root, "overlays", tt.overlay, tt.file)
				raw, err := fsys.ReadFile(p)
				if err != nil {
					return err
				}
				// A new password in the examples, a new line in a JSON file.
				edited := bytes.Replace(raw, []byte("CHANGE-ME"), []byte("NEW-SECRET"), 1)
				if bytes.Equal(edited, raw) {
					edited = append(raw, '\n')
				}
				return fsys.WriteFile(p, edited)
			})
			require.NoError(t, err)
			for _, d := range before.deployments {
				changed := !reflect.DeepEqual(d.Spec.Template, find(t, after.deployments, d.Name).Spec.Template)
				require.Equal(t, slices.Contains(tt.rolls, d.Name), changed, "%s: pod template changed: %v", d.Name, changed)
			}
		})
	}
}

// peer names who a network policy lets in: "anyone", "namespace:<name>"
// or "pods:<Deployment>".
func peers(t *testing.T, m *manifests, from []networkingv1.NetworkPolicyPeer) []string {
	t.Helper()
	if len(from) == 0 {
		return []string{"anyone"}
	}
	var out []string
	for _, p := range from {
		switch {
		case p.IPBlock != nil:
			out = append(out, "ipBlock:"+p.IPBlock.CIDR)
		case p.NamespaceSelector != nil && p.PodSelector == nil:
			require.Empty(t, p.NamespaceSelector.MatchExpressions)
			ns, ok := p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]
			require.True(t, ok && len(p.NamespaceSelector.MatchLabels) == 1, "select namespaces by kubernetes.io/metadata.name")
			out = append(out, "namespace:"+ns)
		case p.NamespaceSelector == nil && p.PodSelector != nil:
			n := 0
			for _, d := range m.deployments {
				if selects(t, p.PodSelector, d.Spec.Template.Labels) {
					out = append(out, "pods:"+d.Name)
					n++
				}
			}
			require.Positive(t, n, "a peer podSelector selects no pods: %v", p.PodSelector)
		default:
			require.Failf(t, "peer", "a peer with both a namespace and a pod selector: %+v", p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ingress returns who may connect to a pod's container port under the
// overlay's network policies, and whether any policy isolates the pod.
func ingress(t *testing.T, m *manifests, podLabels map[string]string, c corev1.Container, port corev1.ContainerPort) (isolated bool, from []string) {
	t.Helper()
	for _, np := range m.policies {
		if !selects(t, &np.Spec.PodSelector, podLabels) ||
			(len(np.Spec.PolicyTypes) > 0 && !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)) {
			continue
		}
		isolated = true
		for _, rule := range np.Spec.Ingress {
			require.NotEmpty(t, rule.Ports, "NetworkPolicy %s: a rule without ports opens every port", np.Name)
			if slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
				if p.Port == nil || (p.Protocol != nil && *p.Protocol != cmp.Or(port.Protocol, corev1.ProtocolTCP)) {
					return p.Port == nil
				}
				n, ok := lookupPort(c, *p.Port)
				return ok && n == port.ContainerPort
			}) {
				from = append(from, peers(t, m, rule.From)...)
			}
		}
	}
	slices.Sort(from)
	return isolated, slices.Compact(from)
}

// TestNetworkPolicies checks who may connect to each port of each pod: the
// public API ports from anywhere, the admin ports from the monitoring
// namespace, the backlog from KEDA, Redis from the API and the workers; and
// nothing else.
func TestNetworkPolicies(t *testing.T) {
	t.Parallel()
	programs := []string{"pods:jobforge-api", "pods:jobforge-worker-cpu", "pods:jobforge-worker-io"}
	want := map[string]map[string][]string{ // Deployment → port name → who
		"jobforge-api": {
			"http":        {"anyone"},
			"grpc":        {"anyone"},
			"admin":       {"namespace:" + monitoringNamespace},
			"autoscaling": {"namespace:" + kedaNamespace},
		},
		"jobforge-worker-io":  {"admin": {"namespace:" + monitoringNamespace}},
		"jobforge-worker-cpu": {"admin": {"namespace:" + monitoringNamespace}},
		"jobforge-redis":      {"redis": programs},
	}
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, d := range m.deployments {
			ports, ok := want[d.Name]
			require.True(t, ok, "Deployment %s has no row in this test", d.Name)
			for _, c := range d.Spec.Template.Spec.Containers {
				var names []string
				for _, p := range c.Ports {
					names = append(names, p.Name)
					isolated, from := ingress(t, m, d.Spec.Template.Labels, c, p)
					require.True(t, isolated, "%s: no NetworkPolicy selects the pods", d.Name)
					require.Equal(t, ports[p.Name], from, "%s: who may connect to port %s", d.Name, p.Name)
				}
				require.ElementsMatch(t, slices.Collect(maps.Keys(ports)), names, "%s: ports", d.Name)
			}
		}
		// Every policy selects pods and names ports that they have.
		for _, np := range m.policies {
			var selected []corev1.Container
			for _, d := range m.deployments {
				if selects(t, &np.Spec.PodSelector, d.Spec.Template.Labels) {
					selected = append(selected, d.Spec.Template.Spec.Containers...)
				}
			}
			require.NotEmpty(t, selected, "NetworkPolicy %s selects no pods", np.Name)
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && p.Port.Type == intstr.String {
						require.True(t, slices.ContainsFunc(selected, func(c corev1.Container) bool {
							return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.Port.StrVal })
						}), "NetworkPolicy %s: no selected pod has a port named %s", np.Name, p.Port.StrVal)
					}
				}
			}
		}
	})
}

// TestScaledObjects checks each KEDA ScaledObject against the worker it
// scales and the API it asks: one metrics-api trigger reads the runnable
// backlog (running jobs plus pending jobs of unpaused queues) of exactly the
// queues the worker serves, from the API's autoscaling Service, with one
// pod's slots as the target.
func TestScaledObjects(t *testing.T) {
	t.Parallel()
	field, ok := reflect.TypeFor[autoscale.Response]().FieldByName("Runnable")
	require.True(t, ok)
	runnable, _, _ := strings.Cut(field.Tag.Get("json"), ",")

	forEachOverlay(t, func(t *testing.T, m *manifests) {
		_, apiContainer, apiCfg := program(t, m, "jobforge-api", config.API)
		apiPod := find(t, m.deployments, "jobforge-api").Spec.Template.Labels
		apiQueues := slices.Concat(slices.Collect(maps.Keys(apiCfg.Queues)), slices.Collect(maps.Keys(apiCfg.CPUQueues)))

		scaled := map[string]bool{}
		for _, so := range m.scaledObjects {
			t.Run(so.Name, func(t *testing.T) {
				require.NoError(t, kedav1alpha1.ValidateTriggers(so.Spec.Triggers), "KEDA's own validation")
				require.NoError(t, kedav1alpha1.CheckReplicaCountBoundsAreValid(so), "KEDA's own validation")
				ref := so.Spec.ScaleTargetRef
				require.NotNil(t, ref)
				require.Contains(t, []string{"", "Deployment"}, ref.Kind)
				require.False(t, scaled[ref.Name], "two ScaledObjects scale %s", ref.Name)
				scaled[ref.Name] = true
				_, c, cfg := program(t, m, ref.Name, config.Worker)
				require.Len(t, cfg.Pools, 1, "one queue class per Deployment")
				queues := served(cfg)

				// Scheduled jobs and retries reach their queue only when a
				// running worker moves them there once due; zero workers
				// would strand them.
				require.NotNil(t, so.Spec.MinReplicaCount, "minReplicaCount defaults to 0")
				require.GreaterOrEqual(t, *so.Spec.MinReplicaCount, int32(1))
				require.NotNil(t, so.Spec.MaxReplicaCount)

				var backlog, cpu int
				for _, tg := range so.Spec.Triggers {
					require.Nil(t, tg.AuthenticationRef, "the triggers need no credentials")
					switch tg.Type {
					case "metrics-api":
						backlog++
						md := tg.Metadata
						require.Equal(t, autoscalingv2.AverageValueMetricType, tg.MetricType,
							"AverageValue: KEDA asks for ceil(runnable / targetValue) pods")
						require.Equal(t, "json", md["format"])
						require.Equal(t, runnable, md["valueLocation"], "the runnable backlog counts running jobs and skips paused queues")
						slots := cfg.Concurrency
						if cfg.Pools[0] == "cpu" {
							slots = cpuSlots(t, c)
						}
						require.Equal(t, strconv.Itoa(slots), md["targetValue"], "targetValue is one pod's slots")
						require.Equal(t, "0", md["activationTargetValue"])

						u, err := url.Parse(md["url"])
						require.NoError(t, err)
						require.Equal(t, "http", u.Scheme)
						require.Equal(t, autoscale.Path, u.Path)
						require.Equal(t, []string{"queues"}, slices.Collect(maps.Keys(u.Query())))
						asked := strings.Split(u.Query().Get("queues"), ",")
						require.Len(t, slices.Compact(slices.Sorted(slices.Values(asked))), len(asked), "a queue asked twice")
						require.ElementsMatch(t, queues, asked, "the trigger must ask for exactly the queues %s serves", ref.Name)
						require.Subset(t, apiQueues, asked, "the API answers 400 for queues it does not know")

						// The operator resolves the host from KEDA's namespace.
						svcName, rest, _ := strings.Cut(u.Hostname(), ".")
						require.Contains(t, []string{m.namespaces[0].Name + ".svc", m.namespaces[0].Name + ".svc.cluster.local"}, rest,
							"the URL's host must be <service>.<this namespace>.svc")
						svc := find(t, m.services, svcName)
						require.True(t, serviceSelects(t, svc, apiPod), "Service %s does not select the API", svcName)
						for _, d := range m.deployments {
							if d.Name != "jobforge-api" {
								require.False(t, serviceSelects(t, svc, d.Spec.Template.Labels),
									"Service %s also selects %s", svcName, d.Name)
							}
						}
						i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == u.Port() })
						require.GreaterOrEqual(t, i, 0, "Service %s has no port %s", svcName, u.Port())
						target := portNumber(t, apiContainer, svc.Spec.Ports[i].TargetPort)
						require.Equal(t, namedPort(t, apiContainer, "autoscaling"), target, "the URL reaches another API port")
						require.Equal(t, addrPort(t, apiCfg.AutoscalingAddr), target, "JOBFORGE_AUTOSCALING_ADDR")
					case "cpu":
						cpu++
						require.Equal(t, autoscalingv2.UtilizationMetricType, tg.MetricType)
						require.Equal(t, c.Name, tg.Metadata["containerName"])
					default:
						require.Failf(t, "unexpected trigger", "trigger type %q: the workers scale on the API's backlog", tg.Type)
					}
				}
				require.Equal(t, 1, backlog, "one backlog trigger per worker class")
				if cfg.Pools[0] == "cpu" {
					require.Equal(t, 1, cpu, "a CPU pool also scales on CPU utilization")
				}
			})
		}
		for _, d := range jobforgeDeployments {
			require.Equal(t, d.program == config.Worker, scaled[d.name], "%s: scaled by KEDA", d.name)
		}
	})
}

func TestAPIService(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		d := find(t, m.deployments, "jobforge-api")
		c := d.Spec.Template.Spec.Containers[0]
		svc := find(t, m.services, "jobforge-api")
		require.True(t, serviceSelects(t, svc, d.Spec.Template.Labels), "Service selector does not match the API pods")
		tests := []struct {
			name        string
			port        int32
			appProtocol string
		}{
			{name: "http", port: 8080, appProtocol: "http"},
			{name: "grpc", port: 9090, appProtocol: "grpc"},
		}
		require.Len(t, svc.Spec.Ports, len(tests), "the public Service exposes only the public ports")
		for _, tt := range tests {
			i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == tt.name })
			require.GreaterOrEqual(t, i, 0, "Service has no port %q", tt.name)
			p := svc.Spec.Ports[i]
			require.Equal(t, tt.port, p.Port)
			require.NotNil(t, p.AppProtocol)
			require.Equal(t, tt.appProtocol, *p.AppProtocol)
			require.Equal(t, namedPort(t, c, tt.name), portNumber(t, c, p.TargetPort), "targetPort")
		}
	})
}

// TestAutoscaling checks that each jobforge Deployment has exactly one
// autoscaler, and leaves spec.replicas to it: a replica count in the
// manifest would reset the autoscaler's choice on every apply.
func TestAutoscaling(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		scalers := map[string]int{}
		for _, h := range m.hpas {
			require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind)
			scalers[h.Spec.ScaleTargetRef.Name]++
			require.NotNil(t, h.Spec.MinReplicas)
			require.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(1))
			if m.name != "dev" {
				require.GreaterOrEqual(t, *h.Spec.MinReplicas, int32(2), "%s: one replica is a single point of failure", h.Name)
			}
			require.GreaterOrEqual(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas)
			require.True(t, slices.ContainsFunc(h.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
				return ms.Type == autoscalingv2.ResourceMetricSourceType && ms.Resource.Name == corev1.ResourceCPU
			}), "%s: no CPU metric", h.Name)
		}
		for _, so := range m.scaledObjects {
			scalers[so.Spec.ScaleTargetRef.Name]++
		}
		for _, d := range jobforgeDeployments {
			require.Equal(t, 1, scalers[d.name], "%s: want exactly one autoscaler", d.name)
			require.Nil(t, find(t, m.deployments, d.name).Spec.Replicas, "%s: spec.replicas is the autoscaler's", d.name)
			delete(scalers, d.name)
		}
		require.Empty(t, scalers, "autoscalers of other Deployments")
	})
}

func TestDisruptionBudgets(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, d := range jobforgeDeployments {
			pod := find(t, m.deployments, d.name).Spec.Template.Labels
			var matching []string
			for _, b := range m.pdbs {
				if selects(t, b.Spec.Selector, pod) {
					matching = append(matching, b.Name)
					require.True(t, (b.Spec.MinAvailable == nil) != (b.Spec.MaxUnavailable == nil), "%s: set one of minAvailable and maxUnavailable", b.Name)
				}
			}
			require.Len(t, matching, 1, "%s: want exactly one PodDisruptionBudget, have %v", d.name, matching)
		}
	})
}

// TestPodHardening checks every Deployment of every overlay against the
// restricted Pod Security level, and for resources and probes.
func TestPodHardening(t *testing.T) {
	t.Parallel()
	forEachOverlay(t, func(t *testing.T, m *manifests) {
		for _, d := range m.deployments {
			spec := d.Spec.Template.Spec
			pod := spec.SecurityContext
			require.NotNil(t, pod, "%s: no pod securityContext", d.Name)
			require.NotNil(t, spec.AutomountServiceAccountToken, "%s", d.Name)
			require.False(t, *spec.AutomountServiceAccountToken, "%s: the programs never call the Kubernetes API", d.Name)
			for _, c := range spec.Containers {
				sc := c.SecurityContext
				require.NotNil(t, sc, "%s/%s: no securityContext", d.Name, c.Name)
				// The container's setting wins over the pod's.
				effective := func(c, p *bool) bool {
					if c != nil {
						return *c
					}
					return p != nil && *p
				}
				require.True(t, effective(sc.RunAsNonRoot, pod.RunAsNonRoot), "%s/%s: runAsNonRoot", d.Name, c.Name)
				for _, uid := range []*int64{sc.RunAsUser, pod.RunAsUser} {
					require.True(t, uid == nil || *uid != 0, "%s/%s: runAsUser 0", d.Name, c.Name)
				}
				require.True(t, effective(sc.ReadOnlyRootFilesystem, nil), "%s/%s: readOnlyRootFilesystem", d.Name, c.Name)
				require.NotNil(t, sc.AllowPrivilegeEscalation, "%s/%s: allowPrivilegeEscalation unset", d.Name, c.Name)
				require.False(t, *sc.AllowPrivilegeEscalation, "%s/%s: allowPrivilegeEscalation", d.Name, c.Name)
				require.NotNil(t, sc.Capabilities)
				require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s/%s: capabilities.drop", d.Name, c.Name)
				require.Empty(t, sc.Capabilities.Add, "%s/%s: capabilities.add", d.Name, c.Name)
				seccomp := sc.SeccompProfile
				if seccomp == nil {
					seccomp = pod.SeccompProfile
				}
				require.NotNil(t, seccomp, "%s/%s: seccompProfile", d.Name, c.Name)
				require.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, seccomp.Type, "%s/%s: seccompProfile", d.Name, c.Name)

				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[r]
					lim, okLim := c.Resources.Limits[r]
					require.True(t, okReq && okLim, "%s/%s: %s request and limit", d.Name, c.Name, r)
					require.LessOrEqual(t, req.Cmp(lim), 0, "%s/%s: %s request above limit", d.Name, c.Name, r)
				}
				require.NotNil(t, c.ReadinessProbe, "%s/%s: no readiness probe", d.Name, c.Name)
				require.NotNil(t, c.LivenessProbe, "%s/%s: no liveness probe", d.Name, c.Name)
				for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
					switch {
					case p.HTTPGet != nil:
						portNumber(t, c, p.HTTPGet.Port)
					case p.TCPSocket != nil:
						portNumber(t, c, p.TCPSocket.Port)
					}
				}
				// Images that float are not images a platform team can apply.
				_, err := k8s.ParseImage(c.Image)
				require.NoError(t, err, "%s/%s", d.Name, c.Name)
			}
		}
	})
}

func TestParseImage(t *testing.T) {
	t.Parallel()
	digest := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		ref     string
		want    k8s.Image
		wantErr string
	}{
		{ref: "jobforge:dev", want: k8s.Image{Name: "jobforge", Tag: "dev"}},
		{ref: "registry.example:5000/team/jobforge:v1.2.3", want: k8s.Image{Name: "registry.example:5000/team/jobforge", Tag: "v1.2.3"}},
		{ref: "registry.example/jobforge@" + digest, want: k8s.Image{Name: "registry.example/jobforge", Digest: digest}},
		{ref: "registry.example/jobforge:v1@" + digest, want: k8s.Image{Name: "registry.example/jobforge", Tag: "v1", Digest: digest}},
		{ref: "registry.example/jobforge:latest@" + digest, want: k8s.Image{Name: "registry.example/jobforge", Tag: "latest", Digest: digest}},
		{ref: "", wantErr: "no image"},
		{ref: "jobforge", wantErr: "give a tag or a digest"},
		{ref: "registry.example:5000/jobforge", wantErr: "give a tag or a digest"},
		{ref: "jobforge:latest", wantErr: "floats"},
		{ref: "jobforge@sha256:abc", wantErr: "digest must be"},
		{ref: "Jobforge:v1", wantErr: "bad name"},
		{ref: "jobforge:v 1", wantErr: "bad tag"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			t.Parallel()
			got, err := k8s.ParseImage(tt.ref)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestRenderSetsImage renders with a tag and with a digest, and expects
// exactly that image in every jobforge container.
func TestRenderSetsImage(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{"registry.example/jobforge:v1.2.3", testImage} {
		t.Run(ref, func(t *testing.T) {
			t.Parallel()
			m, err := k8s.Render(k8s.Options{Dir: ".", Target: "overlays/dev", Image: ref, ExampleSecrets: true})
			require.NoError(t, err)
			n := 0
			for _, r := range m.Resources() {
				if r.GetKind() != "Deployment" || r.GetLabels()["app.kubernetes.io/name"] != "jobforge" {
					continue
				}
				images, err := r.GetSlice("spec.template.spec.containers")
				require.NoError(t, err)
				for _, c := range images {
					require.Equal(t, ref, c.(map[string]any)["image"])
					n++
				}
			}
			require.Len(t, jobforgeDeployments, n)
		})
	}
	_, err := k8s.Render(k8s.Options{Dir: ".", Target: "overlays/dev", Image: "jobforge:latest"})
	require.ErrorContains(t, err, "floats")
}

// TestNoStrayManifests checks that every manifest file is used by some
// kustomization, so none is edited in vain.
func TestNoStrayManifests(t *testing.T) {
	t.Parallel()
	used := map[string]bool{}
	var manifests []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		p = filepath.ToSlash(p)
		switch {
		case path.Base(p) == "kustomization.yaml":
			raw, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			var k struct {
				Resources  []string `json:"resources"`
				Components []string `json:"components"`
				Patches    []struct {
					Path string `json:"path"`
				} `json:"patches"`
			}
			if err := sigsyaml.Unmarshal(raw, &k); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			for _, r := range k.Resources {
				used[path.Join(path.Dir(p), r)] = true
			}
			for _, patch := range k.Patches {
				if patch.Path != "" {
					used[path.Join(path.Dir(p), patch.Path)] = true
				}
			}
		case path.Ext(p) == ".yaml" || path.Ext(p) == ".yml":
			manifests = append(manifests, p)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, manifests)
	for _, f := range manifests {
		require.True(t, used[f], "%s is in no kustomization", f)
	}
}

// TestGoToolchain checks what the manifests assume about the build: the
// CPU worker's one-slot-per-core relies on GOMAXPROCS following the
// container's CPU limit (Go 1.25 and later, by the go directive), and the
// image is built with at least the go.mod version.
func TestGoToolchain(t *testing.T) {
	t.Parallel()
	mod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	require.NotNil(t, m, "go.mod has no go directive")
	goMod := "go" + string(m[1])
	require.GreaterOrEqual(t, version.Compare(goMod, "go1.25"), 0, "GOMAXPROCS follows CPU limits from go1.25")

	dockerfile, err := os.ReadFile("../../Dockerfile")
	require.NoError(t, err)
	m = regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(dockerfile)
	require.NotNil(t, m, "Dockerfile has no ARG GO_VERSION")
	require.GreaterOrEqual(t, version.Compare("go"+string(m[1]), goMod), 0, "Dockerfile GO_VERSION is older than go.mod's")
}
