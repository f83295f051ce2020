// Package k8s_test checks the Kubernetes manifests under deploy/k8s against
// the invariants the programs rely on: probes on the ports the programs
// listen on, grace periods longer than the shutdown timeouts, KEDA triggers
// on the queues each worker class actually serves, hardened pods, and
// kustomizations that only list files that exist.
//
// The manifests are read as written (kustomize is not run): base resources
// are checked in full; overlays' generators and patches are checked where
// they touch an invariant.
package k8s_test

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"go/version"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/jobforge/jobforge/internal/config"
)

const (
	baseDir = "base"

	// redisSecret holds REDIS_URL for the programs and the address and
	// password for KEDA; it is created per environment, not in base.
	redisSecret = "jobforge-redis"

	// workerGraceMargin is how much longer than JOBFORGE_SHUTDOWN_TIMEOUT a
	// pod's grace period must be: after the timeout the worker still
	// requeues unfinished jobs and closes its Redis connections.
	workerGraceMargin = 5 * time.Second
)

// The kinds of object the tests look into, reduced to the fields they check.
type (
	header struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string            `yaml:"name"`
			Namespace string            `yaml:"namespace"`
			Labels    map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
	}

	deployment struct {
		Spec struct {
			Replicas *int          `yaml:"replicas"`
			Selector labelSelector `yaml:"selector"`
			Template struct {
				Metadata struct {
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"metadata"`
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}

	labelSelector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}

	podSpec struct {
		TerminationGracePeriodSeconds *int            `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               securityContext `yaml:"securityContext"`
		TopologySpreadConstraints     []struct {
			TopologyKey   string        `yaml:"topologyKey"`
			LabelSelector labelSelector `yaml:"labelSelector"`
		} `yaml:"topologySpreadConstraints"`
		Containers []container `yaml:"containers"`
	}

	securityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		RunAsUser                *int  `yaml:"runAsUser"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
			Add  []string `yaml:"add"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	}

	container struct {
		Name    string              `yaml:"name"`
		Image   string              `yaml:"image"`
		Command []string            `yaml:"command"`
		Ports   []containerPortSpec `yaml:"ports"`
		Env     []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
				ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		EnvFrom []struct {
			ConfigMapRef *struct {
				Name string `yaml:"name"`
			} `yaml:"configMapRef"`
			SecretRef *struct {
				Name string `yaml:"name"`
			} `yaml:"secretRef"`
		} `yaml:"envFrom"`
		ReadinessProbe *probe `yaml:"readinessProbe"`
		LivenessProbe  *probe `yaml:"livenessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext *securityContext `yaml:"securityContext"`
	}

	containerPortSpec struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	}

	keyRef struct {
		Name string `yaml:"name"`
		Key  string `yaml:"key"`
	}

	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"` // a number or a port name
		} `yaml:"httpGet"`
		TCPSocket *struct {
			Port string `yaml:"port"`
		} `yaml:"tcpSocket"`
		Exec *struct {
			Command []string `yaml:"command"`
		} `yaml:"exec"`
		GRPC *struct {
			Port int `yaml:"port"`
		} `yaml:"grpc"`
	}

	service struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []servicePort     `yaml:"ports"`
		} `yaml:"spec"`
	}

	servicePort struct {
		Name        string `yaml:"name"`
		Port        int    `yaml:"port"`
		TargetPort  string `yaml:"targetPort"`
		AppProtocol string `yaml:"appProtocol"`
	}

	scaleTargetRef struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Name       string `yaml:"name"`
	}

	hpa struct {
		Spec struct {
			ScaleTargetRef scaleTargetRef `yaml:"scaleTargetRef"`
			MinReplicas    *int           `yaml:"minReplicas"`
			MaxReplicas    int            `yaml:"maxReplicas"`
			Metrics        []metric       `yaml:"metrics"`
		} `yaml:"spec"`
	}

	metric struct {
		Type     string `yaml:"type"`
		Resource struct {
			Name string `yaml:"name"`
		} `yaml:"resource"`
	}

	pdb struct {
		Spec struct {
			MinAvailable   *string       `yaml:"minAvailable"`
			MaxUnavailable *string       `yaml:"maxUnavailable"`
			Selector       labelSelector `yaml:"selector"`
		} `yaml:"spec"`
	}

	scaledObject struct {
		Spec struct {
			ScaleTargetRef  scaleTargetRef `yaml:"scaleTargetRef"`
			MinReplicaCount *int           `yaml:"minReplicaCount"`
			MaxReplicaCount *int           `yaml:"maxReplicaCount"`
			Triggers        []trigger      `yaml:"triggers"`
		} `yaml:"spec"`
	}

	trigger struct {
		Type              string            `yaml:"type"`
		MetricType        string            `yaml:"metricType"`
		Metadata          map[string]string `yaml:"metadata"`
		AuthenticationRef *struct {
			Name string `yaml:"name"`
			Kind string `yaml:"kind"`
		} `yaml:"authenticationRef"`
	}

	triggerAuthentication struct {
		Spec struct {
			SecretTargetRef []struct {
				Parameter string `yaml:"parameter"`
				Name      string `yaml:"name"`
				Key       string `yaml:"key"`
			} `yaml:"secretTargetRef"`
		} `yaml:"spec"`
	}

	secret struct {
		Data       map[string]string `yaml:"data"`
		StringData map[string]string `yaml:"stringData"`
	}

	kustomization struct {
		Namespace          string      `yaml:"namespace"`
		Resources          []string    `yaml:"resources"`
		Components         []string    `yaml:"components"`
		ConfigMapGenerator []generator `yaml:"configMapGenerator"`
		SecretGenerator    []generator `yaml:"secretGenerator"`
		Patches            []struct {
			Path   string `yaml:"path"`
			Patch  string `yaml:"patch"`
			Target *struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"target"`
		} `yaml:"patches"`
		Images []image `yaml:"images"`
	}

	image struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
		Digest  string `yaml:"digest"`
	}

	generator struct {
		Name     string   `yaml:"name"`
		Behavior string   `yaml:"behavior"`
		Literals []string `yaml:"literals"`
		Envs     []string `yaml:"envs"`
		Files    []string `yaml:"files"`
		Options  struct {
			DisableNameSuffixHash bool `yaml:"disableNameSuffixHash"`
		} `yaml:"options"`
	}
)

// object is one YAML document of a manifest file.
type object struct {
	header
	file string // slash path relative to deploy/k8s
	node *yaml.Node
}

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.Kind, o.Metadata.Name, o.file) }

// decode decodes the whole document into v.
func decode[T any](t *testing.T, o object) T {
	t.Helper()
	var v T
	require.NoError(t, o.node.Decode(&v), "%s", o)
	return v
}

// tree is everything under deploy/k8s.
type tree struct {
	yamlFiles      []string                 // every .yaml/.yml file
	kustomizations map[string]kustomization // by directory
	objects        map[string][]object      // by file, for files other than kustomizations
}

func load(t *testing.T) tree {
	t.Helper()
	tr := tree{kustomizations: map[string]kustomization{}, objects: map[string][]object{}}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return err
		}
		p = filepath.ToSlash(p)
		tr.yamlFiles = append(tr.yamlFiles, p)
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if path.Base(p) == "kustomization.yaml" || path.Base(p) == "kustomization.yml" {
			var k kustomization
			if err := yaml.Unmarshal(raw, &k); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			tr.kustomizations[path.Dir(p)] = k
			return nil
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for i := 0; ; i++ {
			var n yaml.Node
			if err := dec.Decode(&n); errors.Is(err, io.EOF) {
				return nil
			} else if err != nil {
				return fmt.Errorf("%s: document %d: %w", p, i, err)
			}
			var h header
			if err := n.Decode(&h); err != nil {
				return fmt.Errorf("%s: document %d: %w", p, i, err)
			}
			if h.Kind == "" {
				return fmt.Errorf("%s: document %d has no kind", p, i)
			}
			tr.objects[p] = append(tr.objects[p], object{header: h, file: p, node: &n})
		}
	})
	require.NoError(t, err)
	require.Contains(t, tr.kustomizations, baseDir)
	return tr
}

// resources returns the objects in the files that the kustomization in dir
// lists as resources, following directories that are kustomizations.
func (tr tree) resources(t *testing.T, dir string) []object {
	t.Helper()
	k, ok := tr.kustomizations[dir]
	require.True(t, ok, "no kustomization in %s", dir)
	var out []object
	for _, r := range k.Resources {
		p := path.Clean(path.Join(dir, r))
		if _, isDir := tr.kustomizations[p]; isDir {
			out = append(out, tr.resources(t, p)...)
			continue
		}
		objs, ok := tr.objects[p]
		require.True(t, ok, "%s/kustomization.yaml lists %s, which is not a manifest", dir, r)
		out = append(out, objs...)
	}
	return out
}

func ofKind(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

func named(t *testing.T, objs []object, kind, name string) object {
	t.Helper()
	for _, o := range ofKind(objs, kind) {
		if o.Metadata.Name == name {
			return o
		}
	}
	require.Failf(t, "missing object", "no %s named %q", kind, name)
	return object{}
}

// configMaps returns the data of the ConfigMaps that the kustomization in dir
// produces (its bases' first, then its own generators and manifests).
func (tr tree) configMaps(t *testing.T, dir string) map[string]map[string]string {
	t.Helper()
	k := tr.kustomizations[dir]
	out := map[string]map[string]string{}
	for _, r := range k.Resources {
		if p := path.Clean(path.Join(dir, r)); isKustomization(tr, p) {
			maps.Copy(out, tr.configMaps(t, p))
		}
	}
	for _, g := range k.ConfigMapGenerator {
		data := generated(t, dir, g)
		switch g.Behavior {
		case "", "create":
			require.NotContains(t, out, g.Name, "%s: configMapGenerator %q exists already", dir, g.Name)
			out[g.Name] = data
		case "merge":
			require.Contains(t, out, g.Name, "%s: configMapGenerator %q merges into nothing", dir, g.Name)
			maps.Copy(out[g.Name], data)
		case "replace":
			out[g.Name] = data
		default:
			require.Failf(t, "bad behavior", "%s: configMapGenerator %q: behavior %q", dir, g.Name, g.Behavior)
		}
	}
	for _, r := range k.Resources {
		for _, o := range ofKind(tr.objects[path.Clean(path.Join(dir, r))], "ConfigMap") {
			out[o.Metadata.Name] = decode[secret](t, o).Data
		}
	}
	return out
}

func isKustomization(tr tree, dir string) bool {
	_, ok := tr.kustomizations[dir]
	return ok
}

// generated returns the key/value pairs of a generator's literals and env
// files.
func generated(t *testing.T, dir string, g generator) map[string]string {
	t.Helper()
	kv := map[string]string{}
	lines := slices.Clone(g.Literals)
	for _, f := range g.Envs {
		raw, err := os.ReadFile(path.Join(dir, f))
		require.NoError(t, err)
		for _, l := range strings.Split(string(raw), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
	}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, "=")
		require.True(t, ok, "%s: generator %q: %q is not KEY=VALUE", dir, g.Name, l)
		kv[k] = v
	}
	return kv
}

// env resolves a container's environment the way the kubelet would, with
// Secret values replaced by a placeholder naming their source.
func env(t *testing.T, c container, configMaps map[string]map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ef := range c.EnvFrom {
		require.NotNil(t, ef.ConfigMapRef, "container %s: only configMapRef is expected in envFrom", c.Name)
		data, ok := configMaps[ef.ConfigMapRef.Name]
		require.True(t, ok, "container %s: envFrom names unknown ConfigMap %q", c.Name, ef.ConfigMapRef.Name)
		maps.Copy(out, data)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			out[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			out[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			v, ok := configMaps[ref.Name][ref.Key]
			require.True(t, ok, "container %s: %s refers to missing ConfigMap key %s/%s", c.Name, e.Name, ref.Name, ref.Key)
			out[e.Name] = v
		default:
			out[e.Name] = "" // fieldRef / resourceFieldRef: not the programs' settings
		}
	}
	return out
}

// programEnv is what a program makes of an environment: its parsed config,
// plus the environment variables it reads at all.
func programEnv(t *testing.T, p config.Program, vars map[string]string) (config.Config, []string) {
	t.Helper()
	var usage bytes.Buffer
	_, err := config.Load(p, "program", []string{"-h"}, func(string) string { return "" }, &usage)
	require.ErrorIs(t, err, flag.ErrHelp)
	var known []string
	for _, m := range regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`).FindAllStringSubmatch(usage.String(), -1) {
		known = append(known, m[1])
	}
	require.NotEmpty(t, known, "cannot read the environment variables from the usage text")
	cfg, err := config.Load(p, "program", nil, func(k string) string { return vars[k] }, io.Discard)
	require.NoError(t, err, "the program rejects its environment")
	return cfg, known
}

func containerPort(t *testing.T, c container, port string) int {
	t.Helper()
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return p.ContainerPort
		}
	}
	require.Failf(t, "unknown port", "container %s has no port named %q", c.Name, port)
	return 0
}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	n, err := strconv.Atoi(p)
	require.NoError(t, err)
	return n
}

func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return len(sel) > 0
}

// served returns the queues a worker's pools take jobs from.
func served(cfg config.Config) map[string]bool {
	out := map[string]bool{}
	for _, pool := range cfg.Pools {
		qs := cfg.Queues
		if pool == "cpu" {
			qs = cfg.CPUQueues
		}
		for q := range qs {
			out[q] = true
		}
	}
	return out
}

// parseQuantity parses the CPU and memory quantities the manifests use.
func parseQuantity(t *testing.T, q string) float64 {
	t.Helper()
	units := []struct {
		suffix string
		factor float64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"m", 1e-3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(q, u.suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			require.NoError(t, err, "quantity %q", q)
			return f * u.factor
		}
	}
	f, err := strconv.ParseFloat(q, 64)
	require.NoError(t, err, "quantity %q", q)
	return f
}

func TestKustomizationsListExistingFiles(t *testing.T) {
	t.Parallel()
	tr := load(t)
	used := map[string]bool{}
	for _, dir := range slices.Sorted(maps.Keys(tr.kustomizations)) {
		k := tr.kustomizations[dir]
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			exists := func(what, rel string) string {
				p := path.Clean(path.Join(dir, rel))
				info, err := os.Stat(p)
				require.NoError(t, err, "%s/kustomization.yaml: %s %q", dir, what, rel)
				if info.IsDir() {
					_, ok := tr.kustomizations[p]
					require.True(t, ok, "%s/kustomization.yaml: %s %q is a directory without a kustomization", dir, what, rel)
				}
				return p
			}
			require.NotEmpty(t, k.Resources, "%s/kustomization.yaml lists no resources", dir)
			for _, r := range k.Resources {
				exists("resource", r)
			}
			for _, c := range k.Components {
				exists("component", c)
			}
			for _, p := range k.Patches {
				if p.Path != "" {
					exists("patch", p.Path)
				} else {
					require.NotEmpty(t, p.Patch, "%s/kustomization.yaml: a patch with neither path nor patch", dir)
				}
			}
			for _, g := range slices.Concat(k.ConfigMapGenerator, k.SecretGenerator) {
				for _, f := range slices.Concat(g.Envs, g.Files) {
					if _, p, isKeyed := strings.Cut(f, "="); isKeyed { // files may be key=path
						f = p
					}
					exists("generator file", f)
				}
			}
		})
		for _, r := range k.Resources {
			used[path.Clean(path.Join(dir, r))] = true
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				used[path.Clean(path.Join(dir, p.Path))] = true
			}
		}
	}

	t.Run("no stray manifests", func(t *testing.T) {
		t.Parallel()
		for _, f := range tr.yamlFiles {
			base := path.Base(f)
			if base == "kustomization.yaml" || base == "kustomization.yml" || strings.HasSuffix(base, ".example.yaml") {
				continue
			}
			require.True(t, used[f], "%s is in no kustomization (name examples *.example.yaml)", f)
		}
	})
}

func TestBaseIsNamespaceAgnostic(t *testing.T) {
	t.Parallel()
	tr := load(t)
	require.Empty(t, tr.kustomizations[baseDir].Namespace, "base sets a namespace")
	for _, o := range tr.resources(t, baseDir) {
		require.Empty(t, o.Metadata.Namespace, "%s sets a namespace", o)
		require.NotEqual(t, "Namespace", o.Kind, "%s: namespaces belong in overlays", o)
		require.NotEqual(t, "Secret", o.Kind, "%s: secrets belong in overlays or out of band", o)
	}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		program     config.Program
		command     string
		probePort   int    // readiness and liveness
		metricsPort int    // prometheus.io/port
		pools       string // JOBFORGE_POOLS as parsed, workers only
	}{
		{name: "jobforge-api", program: config.API, command: "/api", probePort: 8080, metricsPort: 8081},
		{name: "jobforge-worker-io", program: config.Worker, command: "/worker", probePort: 8081, metricsPort: 8081, pools: "io"},
		{name: "jobforge-worker-cpu", program: config.Worker, command: "/worker", probePort: 8081, metricsPort: 8081, pools: "cpu"},
	}
	tr := load(t)
	objs := tr.resources(t, baseDir)
	require.Len(t, ofKind(objs, "Deployment"), len(tests), "a base Deployment without a test case")
	configMaps := tr.configMaps(t, baseDir)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := decode[deployment](t, named(t, objs, "Deployment", tt.name))
			tmpl := d.Spec.Template
			require.True(t, subset(d.Spec.Selector.MatchLabels, tmpl.Metadata.Labels), "selector does not match the pod labels")
			require.Len(t, tmpl.Spec.Containers, 1)
			c := tmpl.Spec.Containers[0]
			require.Equal(t, "jobforge", c.Image, "the overlays' images transformer sets the image by this name")
			require.Equal(t, []string{tt.command}, c.Command)

			for _, p := range []struct {
				kind, path string
				probe      *probe
			}{{"readiness", "/readyz", c.ReadinessProbe}, {"liveness", "/healthz", c.LivenessProbe}} {
				require.NotNil(t, p.probe, "no %s probe", p.kind)
				require.NotNil(t, p.probe.HTTPGet, "%s probe is not httpGet", p.kind)
				require.Equal(t, p.path, p.probe.HTTPGet.Path, "%s probe path", p.kind)
				require.Equal(t, tt.probePort, containerPort(t, c, p.probe.HTTPGet.Port), "%s probe port", p.kind)
			}

			ann := tmpl.Metadata.Annotations
			require.Equal(t, "true", ann["prometheus.io/scrape"])
			require.Equal(t, strconv.Itoa(tt.metricsPort), ann["prometheus.io/port"])
			require.Equal(t, "/metrics", ann["prometheus.io/path"])
			require.True(t, slices.ContainsFunc(c.Ports, func(p containerPortSpec) bool { return p.ContainerPort == tt.metricsPort }),
				"metrics port %d is not a container port", tt.metricsPort)

			require.NotEmpty(t, tmpl.Spec.TopologySpreadConstraints)
			for _, tsc := range tmpl.Spec.TopologySpreadConstraints {
				require.True(t, subset(tsc.LabelSelector.MatchLabels, tmpl.Metadata.Labels),
					"topology spread on %s does not select the pods", tsc.TopologyKey)
				require.True(t, subset(tsc.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels),
					"topology spread on %s is wider than the Deployment", tsc.TopologyKey)
			}

			vars := env(t, c, configMaps)
			require.Equal(t, "secret:"+redisSecret+"/REDIS_URL", vars["REDIS_URL"])
			cfg, known := programEnv(t, tt.program, vars)
			for k := range vars {
				if strings.HasPrefix(k, "JOBFORGE_") || k == "REDIS_URL" {
					require.Contains(t, known, k, "%s does not read %s", tt.command, k)
				}
			}

			require.NotNil(t, tmpl.Spec.TerminationGracePeriodSeconds, "terminationGracePeriodSeconds unset (default 30s)")
			grace := time.Duration(*tmpl.Spec.TerminationGracePeriodSeconds) * time.Second
			switch tt.program {
			case config.API:
				require.Equal(t, tt.probePort, addrPort(t, cfg.HTTPAddr))
				require.Equal(t, containerPort(t, c, "grpc"), addrPort(t, cfg.GRPCAddr), "JOBFORGE_GRPC_ADDR and the grpc container port")
				require.GreaterOrEqual(t, cfg.DrainDelay, time.Second,
					"JOBFORGE_DRAIN_DELAY: endpoints need time to drop a terminating pod")
				require.Greater(t, grace, cfg.DrainDelay+cfg.ShutdownTimeout,
					"grace period must cover JOBFORGE_DRAIN_DELAY + JOBFORGE_SHUTDOWN_TIMEOUT")
			case config.Worker:
				require.Equal(t, tt.probePort, addrPort(t, cfg.AdminAddr), "JOBFORGE_ADMIN_ADDR")
				require.Equal(t, tt.pools, strings.Join(cfg.Pools, ","), "JOBFORGE_POOLS")
				require.GreaterOrEqual(t, grace, cfg.ShutdownTimeout+workerGraceMargin,
					"grace period must outlast JOBFORGE_SHUTDOWN_TIMEOUT, or running jobs are killed instead of requeued")
			}

			if slices.Contains(cfg.Pools, "cpu") && tt.program == config.Worker {
				// One slot per core: GOMAXPROCS follows the CPU limit.
				require.NotContains(t, vars, "JOBFORGE_CPU_CONCURRENCY", "leave it unset: one slot per core")
				req, lim := c.Resources.Requests["cpu"], c.Resources.Limits["cpu"]
				require.Equal(t, parseQuantity(t, req), parseQuantity(t, lim), "cpu requests and limits differ")
				cores := parseQuantity(t, lim)
				require.Equal(t, float64(int(cores)), cores, "cpu limit %q is not a whole number of cores", lim)
				require.Equal(t, c.Resources.Requests["memory"], c.Resources.Limits["memory"], "memory requests = limits for Guaranteed QoS")
			}
		})
	}
}

// TestPodHardening checks every Deployment that any kustomization deploys.
func TestPodHardening(t *testing.T) {
	t.Parallel()
	tr := load(t)
	var deployments []object
	for _, dir := range slices.Sorted(maps.Keys(tr.kustomizations)) {
		for _, r := range tr.kustomizations[dir].Resources {
			deployments = append(deployments, ofKind(tr.objects[path.Clean(path.Join(dir, r))], "Deployment")...)
		}
	}
	require.NotEmpty(t, deployments)
	for _, o := range deployments {
		t.Run(o.file+"/"+o.Metadata.Name, func(t *testing.T) {
			t.Parallel()
			spec := decode[deployment](t, o).Spec.Template.Spec
			pod := spec.SecurityContext
			require.NotEmpty(t, spec.Containers)
			for _, c := range spec.Containers {
				sc := securityContext{}
				if c.SecurityContext != nil {
					sc = *c.SecurityContext
				}
				// The container's setting wins over the pod's.
				effective := func(c, p *bool) bool {
					if c != nil {
						return *c
					}
					return p != nil && *p
				}
				require.True(t, effective(sc.RunAsNonRoot, pod.RunAsNonRoot), "%s: runAsNonRoot", c.Name)
				if sc.RunAsUser != nil {
					require.NotZero(t, *sc.RunAsUser, "%s: runAsUser 0", c.Name)
				}
				if pod.RunAsUser != nil {
					require.NotZero(t, *pod.RunAsUser, "%s: pod runAsUser 0", c.Name)
				}
				require.True(t, effective(sc.ReadOnlyRootFilesystem, nil), "%s: readOnlyRootFilesystem", c.Name)
				require.NotNil(t, sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation unset", c.Name)
				require.False(t, *sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", c.Name)
				require.Equal(t, []string{"ALL"}, sc.Capabilities.Drop, "%s: capabilities.drop", c.Name)
				require.Empty(t, sc.Capabilities.Add, "%s: capabilities.add", c.Name)
				seccomp := cmp.Or(sc.SeccompProfile.Type, pod.SeccompProfile.Type)
				require.Equal(t, "RuntimeDefault", seccomp, "%s: seccompProfile", c.Name)

				for _, r := range []string{"cpu", "memory"} {
					req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
					require.NotEmpty(t, req, "%s: no %s request", c.Name, r)
					require.NotEmpty(t, lim, "%s: no %s limit", c.Name, r)
					require.LessOrEqual(t, parseQuantity(t, req), parseQuantity(t, lim), "%s: %s request above limit", c.Name, r)
				}
				require.NotNil(t, c.ReadinessProbe, "%s: no readiness probe", c.Name)
				require.NotNil(t, c.LivenessProbe, "%s: no liveness probe", c.Name)
				for _, p := range []*probe{c.ReadinessProbe, c.LivenessProbe} {
					switch {
					case p.HTTPGet != nil:
						containerPort(t, c, p.HTTPGet.Port)
					case p.TCPSocket != nil:
						containerPort(t, c, p.TCPSocket.Port)
					}
				}
			}
		})
	}
}

func TestAPIService(t *testing.T) {
	t.Parallel()
	tr := load(t)
	objs := tr.resources(t, baseDir)
	d := decode[deployment](t, named(t, objs, "Deployment", "jobforge-api"))
	c := d.Spec.Template.Spec.Containers[0]
	svc := decode[service](t, named(t, objs, "Service", "jobforge-api"))
	require.True(t, subset(svc.Spec.Selector, d.Spec.Template.Metadata.Labels), "Service selector does not match the API pods")

	tests := []struct {
		name        string
		port        int
		appProtocol string
	}{
		{name: "http", port: 8080, appProtocol: "http"},
		{name: "grpc", port: 9090, appProtocol: "grpc"},
	}
	require.Len(t, svc.Spec.Ports, len(tests))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			i := slices.IndexFunc(svc.Spec.Ports, func(p servicePort) bool { return p.Name == tt.name })
			require.GreaterOrEqual(t, i, 0, "Service has no port %q", tt.name)
			p := svc.Spec.Ports[i]
			require.Equal(t, tt.port, p.Port)
			require.Equal(t, tt.appProtocol, p.AppProtocol)
			require.Equal(t, tt.port, containerPort(t, c, cmp.Or(p.TargetPort, strconv.Itoa(p.Port))), "targetPort")
		})
	}
}

// TestAutoscaling checks that each base Deployment has exactly one
// autoscaler, and leaves spec.replicas to it: a replica count in the manifest
// would reset the autoscaler's choice on every apply.
func TestAutoscaling(t *testing.T) {
	t.Parallel()
	tr := load(t)
	objs := tr.resources(t, baseDir)
	scalers := map[string][]string{}
	for _, o := range ofKind(objs, "HorizontalPodAutoscaler") {
		h := decode[hpa](t, o)
		require.Equal(t, "Deployment", h.Spec.ScaleTargetRef.Kind, "%s", o)
		scalers[h.Spec.ScaleTargetRef.Name] = append(scalers[h.Spec.ScaleTargetRef.Name], o.String())
		require.NotNil(t, h.Spec.MinReplicas, "%s", o)
		require.GreaterOrEqual(t, *h.Spec.MinReplicas, 2, "%s: one replica is a single point of failure", o)
		require.GreaterOrEqual(t, h.Spec.MaxReplicas, *h.Spec.MinReplicas, "%s", o)
		require.True(t, slices.ContainsFunc(h.Spec.Metrics, func(m metric) bool {
			return m.Type == "Resource" && m.Resource.Name == "cpu"
		}), "%s: no CPU metric", o)
	}
	for _, o := range ofKind(objs, "ScaledObject") {
		ref := decode[scaledObject](t, o).Spec.ScaleTargetRef
		scalers[ref.Name] = append(scalers[ref.Name], o.String())
	}
	for _, o := range ofKind(objs, "Deployment") {
		require.Len(t, scalers[o.Metadata.Name], 1, "%s: want exactly one autoscaler, have %v", o, scalers[o.Metadata.Name])
		require.Nil(t, decode[deployment](t, o).Spec.Replicas, "%s: spec.replicas is the autoscaler's", o)
		delete(scalers, o.Metadata.Name)
	}
	require.Empty(t, scalers, "autoscalers for Deployments that base does not have")
}

func TestDisruptionBudgets(t *testing.T) {
	t.Parallel()
	tr := load(t)
	objs := tr.resources(t, baseDir)
	budgets := ofKind(objs, "PodDisruptionBudget")
	for _, o := range ofKind(objs, "Deployment") {
		t.Run(o.Metadata.Name, func(t *testing.T) {
			t.Parallel()
			labels := decode[deployment](t, o).Spec.Template.Metadata.Labels
			var matching []string
			for _, b := range budgets {
				p := decode[pdb](t, b)
				if subset(p.Spec.Selector.MatchLabels, labels) {
					matching = append(matching, b.Metadata.Name)
					require.True(t, (p.Spec.MinAvailable == nil) != (p.Spec.MaxUnavailable == nil),
						"%s: set one of minAvailable and maxUnavailable", b)
				}
			}
			require.Len(t, matching, 1, "want exactly one PodDisruptionBudget for the pods, have %v", matching)
		})
	}
}

var listName = regexp.MustCompile(`^asynq:\{([a-z][a-z0-9_-]*)\}:pending$`)

// TestScaledObjects checks each KEDA ScaledObject against the worker it
// scales: its redis triggers watch the pending lists of exactly the queues
// that worker serves, according to the worker's own configuration.
func TestScaledObjects(t *testing.T) {
	t.Parallel()
	tr := load(t)
	objs := tr.resources(t, baseDir)
	configMaps := tr.configMaps(t, baseDir)
	auths := map[string]bool{}
	for _, o := range ofKind(objs, "TriggerAuthentication") {
		auths[o.Metadata.Name] = true
	}
	scaled := ofKind(objs, "ScaledObject")
	require.NotEmpty(t, scaled)
	for _, o := range scaled {
		t.Run(o.Metadata.Name, func(t *testing.T) {
			t.Parallel()
			so := decode[scaledObject](t, o)
			ref := so.Spec.ScaleTargetRef
			require.Contains(t, []string{"", "Deployment"}, ref.Kind)
			d := decode[deployment](t, named(t, objs, "Deployment", ref.Name))
			c := d.Spec.Template.Spec.Containers[0]
			require.Equal(t, []string{"/worker"}, c.Command, "KEDA scales workers")
			cfg, _ := programEnv(t, config.Worker, env(t, c, configMaps))
			queues := served(cfg)

			// Scheduled jobs and retries reach the pending lists only when
			// a running worker moves them there once due; zero workers
			// would strand them.
			require.NotNil(t, so.Spec.MinReplicaCount, "minReplicaCount defaults to 0")
			require.GreaterOrEqual(t, *so.Spec.MinReplicaCount, 1)
			require.NotNil(t, so.Spec.MaxReplicaCount)
			require.GreaterOrEqual(t, *so.Spec.MaxReplicaCount, *so.Spec.MinReplicaCount)

			watched := map[string]bool{}
			hasCPU := false
			for _, tg := range so.Spec.Triggers {
				switch tg.Type {
				case "redis":
					m := listName.FindStringSubmatch(tg.Metadata["listName"])
					require.NotNil(t, m, "listName %q is not asynq:{<queue>}:pending", tg.Metadata["listName"])
					q := m[1]
					require.True(t, queues[q], "trigger on queue %q, which %s does not serve (it serves %v)",
						q, ref.Name, slices.Sorted(maps.Keys(queues)))
					require.False(t, watched[q], "two triggers on queue %q", q)
					watched[q] = true
					n, err := strconv.Atoi(tg.Metadata["listLength"])
					require.NoError(t, err, "listLength")
					require.Positive(t, n, "listLength")
					_, err = strconv.Atoi(tg.Metadata["databaseIndex"])
					require.NoError(t, err, "databaseIndex: must match REDIS_URL's database")
					require.Empty(t, tg.Metadata["address"], "the address comes from the TriggerAuthentication")
					require.Empty(t, tg.Metadata["password"], "the password comes from the TriggerAuthentication")
					require.NotNil(t, tg.AuthenticationRef, "redis trigger without authenticationRef")
					require.True(t, auths[tg.AuthenticationRef.Name], "unknown TriggerAuthentication %q", tg.AuthenticationRef.Name)
				case "cpu":
					hasCPU = true
					require.Equal(t, "Utilization", tg.MetricType)
					require.Equal(t, c.Name, tg.Metadata["containerName"])
				default:
					require.Failf(t, "unexpected trigger", "trigger type %q", tg.Type)
				}
			}
			require.Equal(t, slices.Sorted(maps.Keys(queues)), slices.Sorted(maps.Keys(watched)),
				"every queue the worker serves needs a trigger")
			if slices.Contains(cfg.Pools, "cpu") {
				require.True(t, hasCPU, "a CPU pool also scales on CPU utilization")
			}
		})
	}
}

// redisSecrets returns every definition of the Redis Secret: generated by
// an overlay, or written as an example. The key is where it is defined.
func redisSecrets(t *testing.T, tr tree) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for dir, k := range tr.kustomizations {
		for _, g := range k.SecretGenerator {
			if g.Name == redisSecret {
				require.True(t, g.Options.DisableNameSuffixHash,
					"%s: secretGenerator %s needs disableNameSuffixHash: KEDA refers to it by its plain name", dir, g.Name)
				out[dir] = generated(t, dir, g)
			}
		}
	}
	for f, objs := range tr.objects {
		for _, o := range ofKind(objs, "Secret") {
			if o.Metadata.Name == redisSecret {
				s := decode[secret](t, o)
				require.Empty(t, s.Data, "%s: use stringData", o)
				out[f] = s.StringData
			}
		}
	}
	return out
}

// TestRedisSecret checks that the TriggerAuthentication reads the Secret the
// programs read, and that every definition of it describes one Redis in
// three ways: REDIS_URL for the programs, REDIS_ADDRESS and REDIS_PASSWORD
// for KEDA.
func TestRedisSecret(t *testing.T) {
	t.Parallel()
	tr := load(t)
	objs := tr.resources(t, baseDir)

	auths := ofKind(objs, "TriggerAuthentication")
	require.Len(t, auths, 1)
	params := map[string]string{}
	for _, r := range decode[triggerAuthentication](t, auths[0]).Spec.SecretTargetRef {
		require.Equal(t, redisSecret, r.Name, "TriggerAuthentication reads another Secret")
		params[r.Parameter] = r.Key
	}
	require.Equal(t, map[string]string{"address": "REDIS_ADDRESS", "password": "REDIS_PASSWORD"}, params)

	databases := map[string]bool{}
	for _, o := range ofKind(objs, "ScaledObject") {
		for _, tg := range decode[scaledObject](t, o).Spec.Triggers {
			if tg.Type == "redis" {
				databases[tg.Metadata["databaseIndex"]] = true
			}
		}
	}
	require.Len(t, databases, 1, "all triggers watch one database")

	defs := redisSecrets(t, tr)
	require.NotEmpty(t, defs)
	for where, data := range defs {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			u, err := url.Parse(data["REDIS_URL"])
			require.NoError(t, err)
			require.Contains(t, []string{"redis", "rediss"}, u.Scheme, "REDIS_URL (for Sentinel, see the production overlay)")
			require.Equal(t, u.Host, data["REDIS_ADDRESS"], "REDIS_URL and REDIS_ADDRESS name different servers")
			pw, _ := u.User.Password()
			require.Equal(t, pw, data["REDIS_PASSWORD"], "REDIS_URL and REDIS_PASSWORD differ")
			db := cmp.Or(strings.TrimPrefix(u.Path, "/"), "0")
			require.True(t, databases[db], "REDIS_URL uses database %s, the KEDA triggers watch %v", db, slices.Collect(maps.Keys(databases)))

			// The KEDA operator resolves the address from its own namespace.
			host := u.Hostname()
			require.Contains(t, host, ".", "REDIS_ADDRESS %q is not qualified with a namespace", host)
			if k, ok := tr.kustomizations[where]; ok {
				svcName, _, _ := strings.Cut(host, ".")
				for _, o := range ofKind(tr.resources(t, where), "Service") {
					if o.Metadata.Name == svcName {
						require.Regexp(t, `^`+regexp.QuoteMeta(svcName+"."+k.Namespace+".svc")+`(\.cluster\.local)?$`, host,
							"the Redis Service is in namespace %q", k.Namespace)
						s := decode[service](t, o)
						require.Equal(t, strconv.Itoa(s.Spec.Ports[0].Port), u.Port())
					}
				}
			}
		})
	}
}

func TestOverlays(t *testing.T) {
	t.Parallel()
	tr := load(t)
	var overlays []string
	for dir := range tr.kustomizations {
		if strings.HasPrefix(dir, "overlays/") {
			overlays = append(overlays, dir)
		}
	}
	slices.Sort(overlays)
	require.ElementsMatch(t, []string{"overlays/dev", "overlays/production"}, overlays)

	baseConfig := tr.configMaps(t, baseDir)
	for _, dir := range overlays {
		k := tr.kustomizations[dir]
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			require.NotEmpty(t, k.Namespace, "overlay sets no namespace")
			require.Contains(t, k.Resources, "../../base")

			i := slices.IndexFunc(k.Images, func(im image) bool { return im.Name == "jobforge" })
			require.GreaterOrEqual(t, i, 0, "overlay does not set the jobforge image")
			im := k.Images[i]
			require.True(t, im.Digest != "" || (im.NewTag != "" && im.NewTag != "latest"), "pin the image tag or digest")

			// The KEDA triggers are written for base's queue lists; an
			// overlay that changes them must patch the triggers too.
			overlayConfig := tr.configMaps(t, dir)
			for _, key := range []string{"JOBFORGE_QUEUES", "JOBFORGE_CPU_QUEUES", "JOBFORGE_POOLS"} {
				require.Equal(t, baseConfig["jobforge-config"][key], overlayConfig["jobforge-config"][key],
					"%s changes %s; patch the ScaledObject triggers to match and extend this test", dir, key)
			}

			for _, p := range k.Patches {
				require.NotNil(t, p.Target, "%s: patches need a target", dir)
				if p.Patch == "" {
					continue
				}
				var ops []struct {
					Op    string `yaml:"op"`
					Path  string `yaml:"path"`
					Value any    `yaml:"value"`
				}
				require.NoError(t, yaml.Unmarshal([]byte(p.Patch), &ops), "%s: inline patches are JSON 6902", dir)
				for _, op := range ops {
					n, _ := op.Value.(int)
					switch {
					case p.Target.Kind == "ScaledObject" && op.Path == "/spec/minReplicaCount":
						require.GreaterOrEqual(t, n, 1, "%s: ScaledObject minReplicaCount < 1 strands scheduled jobs and retries", dir)
					case p.Target.Kind == "HorizontalPodAutoscaler" && op.Path == "/spec/minReplicas":
						require.GreaterOrEqual(t, n, 1, "%s: minReplicas", dir)
					case strings.HasSuffix(op.Path, "/replicas") && p.Target.Kind == "Deployment":
						require.Failf(t, "replicas patch", "%s: replicas belong to the autoscaler; patch its minimum", dir)
					}
				}
			}
		})
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
