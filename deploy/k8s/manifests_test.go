// Package k8s_test checks the Kubernetes manifests offline. No validator with the API
// schemas can be installed here without network (kubeconform fetches them), so this is a
// structural check of what would otherwise only fail at `kubectl apply` or at runtime:
// kinds and API versions, the kustomization's file list, selectors that select, probes on
// the port each role actually listens on, the UVR_* variables uvr really reads, replicas
// within the Kafka partitions, and the restricted security settings.
package k8s_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

func repoRoot() string { return filepath.Clean(filepath.Join(dir(), "..", "..")) }

// apiVersions of every kind the manifests may hold (the stable versions of current clusters).
var apiVersions = map[string]string{
	"Namespace":               "v1",
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"Service":                 "v1",
	"ServiceAccount":          "v1",
	"Deployment":              "apps/v1",
	"StatefulSet":             "apps/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"PodDisruptionBudget":     "policy/v1",
	"SecretStore":             "external-secrets.io/v1",
	"ExternalSecret":          "external-secrets.io/v1",
}

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name        string            `yaml:"name"`
		Namespace   string            `yaml:"namespace"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
	file       string
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port any `yaml:"port"`
	} `yaml:"tcpSocket"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type deploymentSpec struct {
	Replicas *int `yaml:"replicas"`
	Selector struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	} `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			SecurityContext struct {
				RunAsNonRoot   bool `yaml:"runAsNonRoot"`
				RunAsUser      int  `yaml:"runAsUser"`
				SeccompProfile struct {
					Type string `yaml:"type"`
				} `yaml:"seccompProfile"`
			} `yaml:"securityContext"`
			Containers []container `yaml:"containers"`
			Volumes    []struct {
				Name string `yaml:"name"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int `yaml:"port"`
		TargetPort any `yaml:"targetPort"`
	} `yaml:"ports"`
}

type hpaSpec struct {
	ScaleTargetRef struct {
		Kind string `yaml:"kind"`
		Name string `yaml:"name"`
	} `yaml:"scaleTargetRef"`
	MinReplicas int `yaml:"minReplicas"`
	MaxReplicas int `yaml:"maxReplicas"`
	Metrics     []struct {
		Resource struct {
			Name string `yaml:"name"`
		} `yaml:"resource"`
	} `yaml:"metrics"`
}

type kustomization struct {
	Kind       string   `yaml:"kind"`
	Namespace  string   `yaml:"namespace"`
	Resources  []string `yaml:"resources"`
	Components []string `yaml:"components"`
	Images     []struct {
		Name string `yaml:"name"`
	} `yaml:"images"`
}

func decodeAll(t *testing.T, path string) []object {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		if o.Kind == "" && o.APIVersion == "" {
			continue // an empty document
		}
		o.file = filepath.Base(path)
		objs = append(objs, o)
	}
	return objs
}

func loadKustomization(t *testing.T, d string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d, "kustomization.yaml"))
	require.NoError(t, err)
	var k kustomization
	require.NoError(t, yaml.Unmarshal(b, &k))
	return k
}

// load reads the base: every resource file of kustomization.yaml, and checks that no
// manifest beside it is forgotten.
func load(t *testing.T) (kustomization, []object) {
	t.Helper()
	k := loadKustomization(t, dir())
	require.Equal(t, "Kustomization", k.Kind)
	require.NotEmpty(t, k.Namespace)
	files, err := filepath.Glob(filepath.Join(dir(), "*.yaml"))
	require.NoError(t, err)
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			require.Contains(t, k.Resources, base, "%s is not listed in kustomization.yaml", base)
		}
	}
	var objs []object
	for _, r := range k.Resources {
		objs = append(objs, decodeAll(t, filepath.Join(dir(), r))...)
	}
	return k, objs
}

func find(objs []object, kind, name string) *object {
	for i := range objs {
		if objs[i].Kind == kind && objs[i].Metadata.Name == name {
			return &objs[i]
		}
	}
	return nil
}

func decodeSpec[T any](t *testing.T, o *object) T {
	t.Helper()
	var s T
	require.NoError(t, o.Spec.Decode(&s), "%s %s spec", o.Kind, o.Metadata.Name)
	return s
}

func TestEveryObjectHasAKnownKindAndVersion(t *testing.T) {
	k, objs := load(t)
	require.NotEmpty(t, objs)
	// The optional component is checked too: kinds, versions, names.
	for _, c := range k.Components {
		require.DirExists(t, filepath.Join(dir(), c))
	}
	comp := filepath.Join(dir(), "components", "external-secrets")
	ck := loadKustomization(t, comp)
	require.Equal(t, "Component", ck.Kind)
	for _, r := range ck.Resources {
		objs = append(objs, decodeAll(t, filepath.Join(comp, r))...)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		want, ok := apiVersions[o.Kind]
		require.True(t, ok, "%s: unexpected kind %q", o.file, o.Kind)
		require.Equal(t, want, o.APIVersion, "%s: %s %s", o.file, o.Kind, o.Metadata.Name)
		require.NotEmpty(t, o.Metadata.Name, "%s: %s without a name", o.file, o.Kind)
		// kustomize sets the namespace; one written here could disagree with it.
		if o.Kind != "Namespace" {
			require.Empty(t, o.Metadata.Namespace, "%s: %s %s sets a namespace; kustomization.yaml does", o.file, o.Kind, o.Metadata.Name)
		}
		key := o.Kind + "/" + o.Metadata.Name
		require.False(t, seen[key], "%s defined twice", key)
		seen[key] = true
	}
	require.NotNil(t, find(objs, "Namespace", k.Namespace), "the Namespace %s of kustomization.yaml is not defined", k.Namespace)
}

// The placeholder Secret carries no value: real secrets come from Vault.
func TestSecretIsAnEmptyPlaceholder(t *testing.T) {
	_, objs := load(t)
	for _, o := range objs {
		if o.Kind != "Secret" {
			continue
		}
		require.Empty(t, o.Data, "%s: Secret %s has data", o.file, o.Metadata.Name)
		require.NotEmpty(t, o.StringData, "%s: Secret %s lists no keys", o.file, o.Metadata.Name)
		for k, v := range o.StringData {
			require.Empty(t, v, "%s: Secret %s key %s holds a value; secrets come from Vault", o.file, o.Metadata.Name, k)
		}
	}
}

// role of each Deployment: the uvr subcommand, and the port its /health and /metrics are on.
var roles = map[string]struct {
	command string
	port    int
	addrEnv string
}{
	"uvr-api":       {"api", 8000, "UVR_HTTP_ADDR"},
	"uvr-projector": {"project", 8001, "UVR_METRICS_ADDR"},
	"uvr-connect":   {"connect", 8001, "UVR_METRICS_ADDR"},
}

func TestDeployments(t *testing.T) {
	k, objs := load(t)
	dockerUID, binary := dockerfileUserAndBinary(t)
	cm := find(objs, "ConfigMap", "uvr-config")
	require.NotNil(t, cm, "ConfigMap uvr-config")
	partitions, err := strconv.Atoi(cm.Data["UVR_TOPIC_PARTITIONS"])
	require.NoError(t, err, "UVR_TOPIC_PARTITIONS in uvr-config")
	images := []string{}
	for _, im := range k.Images {
		images = append(images, im.Name)
	}

	for name, role := range roles {
		t.Run(name, func(t *testing.T) {
			o := find(objs, "Deployment", name)
			require.NotNil(t, o, "Deployment %s", name)
			d := decodeSpec[deploymentSpec](t, o)
			require.NotEmpty(t, d.Selector.MatchLabels)
			for k, v := range d.Selector.MatchLabels {
				require.Equal(t, v, d.Template.Metadata.Labels[k], "selector %s=%s does not select the pod template", k, v)
			}
			if d.Replicas != nil && name != "uvr-api" {
				// One partition per group member: more replicas than partitions idle.
				require.LessOrEqual(t, *d.Replicas, partitions, "%s: replicas above UVR_TOPIC_PARTITIONS=%d", name, partitions)
			}

			pod := d.Template.Spec
			require.True(t, pod.SecurityContext.RunAsNonRoot, "runAsNonRoot")
			require.Equal(t, dockerUID, pod.SecurityContext.RunAsUser, "runAsUser must be the Dockerfile's user")
			require.Equal(t, "RuntimeDefault", pod.SecurityContext.SeccompProfile.Type)
			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			require.Contains(t, images, c.Image, "image %q is not set by kustomization.yaml images", c.Image)
			require.Equal(t, []string{binary}, c.Command, "command: the binary of deploy/Dockerfile")
			require.Equal(t, []string{role.command}, c.Args)

			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			require.Equal(t, "0.0.0.0:"+strconv.Itoa(role.port), env[role.addrEnv], "%s must listen on all interfaces for the kubelet and Prometheus", role.addrEnv)
			var refs []string
			for _, ef := range c.EnvFrom {
				switch {
				case ef.ConfigMapRef != nil:
					require.NotNil(t, find(objs, "ConfigMap", ef.ConfigMapRef.Name), "envFrom ConfigMap %s", ef.ConfigMapRef.Name)
					refs = append(refs, "cm")
				case ef.SecretRef != nil:
					require.NotNil(t, find(objs, "Secret", ef.SecretRef.Name), "envFrom Secret %s", ef.SecretRef.Name)
					refs = append(refs, "secret")
				}
			}
			require.ElementsMatch(t, []string{"cm", "secret"}, refs)

			require.Len(t, c.Ports, 1)
			require.Equal(t, role.port, c.Ports[0].ContainerPort)
			portName := c.Ports[0].Name
			onPort := func(p any) bool { return p == portName || p == role.port }
			for what, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe} {
				require.NotNil(t, p, "%s probe", what)
				require.NotNil(t, p.HTTPGet, "%s probe is an HTTP GET", what)
				require.Equal(t, "/health", p.HTTPGet.Path, "%s probe path", what)
				require.True(t, onPort(p.HTTPGet.Port), "%s probe port %v is not the container port", what, p.HTTPGet.Port)
			}
			require.NotNil(t, c.LivenessProbe, "liveness probe")
			require.NotNil(t, c.LivenessProbe.TCPSocket, "liveness must not depend on Kafka/ClickHouse (/health does)")
			require.True(t, onPort(c.LivenessProbe.TCPSocket.Port))

			ann := d.Template.Metadata.Annotations
			require.Equal(t, "true", ann["prometheus.io/scrape"])
			require.Equal(t, strconv.Itoa(role.port), ann["prometheus.io/port"])
			require.Equal(t, "/metrics", ann["prometheus.io/path"])

			for _, r := range []string{"cpu", "memory"} {
				require.NotEmpty(t, c.Resources.Requests[r], "requests.%s", r)
				require.NotEmpty(t, c.Resources.Limits[r], "limits.%s", r)
			}
			sc := c.SecurityContext
			require.True(t, sc.ReadOnlyRootFilesystem, "readOnlyRootFilesystem")
			require.NotNil(t, sc.AllowPrivilegeEscalation)
			require.False(t, *sc.AllowPrivilegeEscalation)
			require.Equal(t, []string{"ALL"}, sc.Capabilities.Drop)
			// A read-only root needs writable mounts where uvr writes: its data dir.
			var mounts, volumes []string
			for _, m := range c.VolumeMounts {
				mounts = append(mounts, m.MountPath)
				require.True(t, slices.ContainsFunc(pod.Volumes, func(v struct {
					Name string `yaml:"name"`
				}) bool {
					return v.Name == m.Name
				}), "volumeMount %s has no volume", m.Name)
			}
			for _, v := range pod.Volumes {
				volumes = append(volumes, v.Name)
			}
			require.Contains(t, mounts, cm.Data["UVR_DATA_DIR"], "UVR_DATA_DIR must be a writable mount (volumes %v)", volumes)
		})
	}
}

func TestAPIServiceAndAutoscaler(t *testing.T) {
	_, objs := load(t)
	dep := find(objs, "Deployment", "uvr-api")
	require.NotNil(t, dep)
	d := decodeSpec[deploymentSpec](t, dep)
	require.Nil(t, d.Replicas, "the HPA owns uvr-api's replicas; a replicas field resets them on every apply")

	svc := find(objs, "Service", "uvr-api")
	require.NotNil(t, svc, "Service uvr-api")
	s := decodeSpec[serviceSpec](t, svc)
	require.NotEmpty(t, s.Selector)
	for k, v := range s.Selector {
		require.Equal(t, v, d.Template.Metadata.Labels[k], "Service selector %s=%s selects no api pod", k, v)
	}
	c := d.Template.Spec.Containers[0]
	require.Len(t, s.Ports, 1)
	tp := s.Ports[0].TargetPort
	require.True(t, tp == c.Ports[0].Name || tp == c.Ports[0].ContainerPort, "Service targetPort %v is not the api container port", tp)

	hpa := find(objs, "HorizontalPodAutoscaler", "uvr-api")
	require.NotNil(t, hpa, "HPA uvr-api")
	h := decodeSpec[hpaSpec](t, hpa)
	require.Equal(t, "Deployment", h.ScaleTargetRef.Kind)
	require.Equal(t, "uvr-api", h.ScaleTargetRef.Name)
	require.GreaterOrEqual(t, h.MinReplicas, 2, "one api pod is a single point of failure")
	require.Greater(t, h.MaxReplicas, h.MinReplicas)
	require.Len(t, h.Metrics, 1)
	require.Equal(t, "cpu", h.Metrics[0].Resource.Name)
	// CPU utilisation is relative to requests: without one the HPA cannot act.
	require.NotEmpty(t, c.Resources.Requests["cpu"])
}

var envName = regexp.MustCompile(`withEnv\("[a-z0-9-]+", "([A-Z0-9_]+)"\)`)

// uvrEnv are the environment variables uvr reads (cmd/uvr/config.go: withEnv).
func uvrEnv(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "cmd", "uvr", "config.go"))
	require.NoError(t, err)
	names := map[string]bool{}
	for _, m := range envName.FindAllSubmatch(b, -1) {
		names[string(m[1])] = true
	}
	require.Greater(t, len(names), 10, "cmd/uvr/config.go: the withEnv scan found too little")
	return names
}

// A misspelt variable is silently ignored by uvr (it would use its default, e.g. the local
// credential store instead of Vault): every variable the deploy files set for uvr must be
// one it reads. GOMEMLIMIT is the Go runtime's.
func TestEveryVariableIsOneUvrReads(t *testing.T) {
	known := uvrEnv(t)
	known["GOMEMLIMIT"] = true
	_, objs := load(t)
	check := func(where, name string) {
		require.True(t, known[name], "%s sets %s, which uvr does not read (cmd/uvr/config.go)", where, name)
	}
	for _, o := range objs {
		switch o.Kind {
		case "ConfigMap":
			for k := range o.Data {
				check(o.file, k)
			}
		case "Secret":
			for k := range o.StringData {
				check(o.file, k)
			}
		case "Deployment":
			d := decodeSpec[deploymentSpec](t, &o)
			for _, c := range d.Template.Spec.Containers {
				for _, e := range c.Env {
					check(o.file+" "+o.Metadata.Name, e.Name)
				}
			}
		}
	}
	es := decodeAll(t, filepath.Join(dir(), "components", "external-secrets", "external-secret.yaml"))
	require.Len(t, es, 1)
	var spec struct {
		Data []struct {
			SecretKey string `yaml:"secretKey"`
		} `yaml:"data"`
	}
	require.NoError(t, es[0].Spec.Decode(&spec))
	var keys []string
	for _, d := range spec.Data {
		check("external-secret.yaml", d.SecretKey)
		keys = append(keys, d.SecretKey)
	}
	_, base := load(t)
	var placeholder []string
	for k := range find(base, "Secret", "uvr-secrets").StringData {
		placeholder = append(placeholder, k)
	}
	require.ElementsMatch(t, placeholder, keys, "the ExternalSecret must fill the keys of the placeholder Secret")

	// docker-compose.yml: the environment of the uvr services (the x-uvr-env anchor included).
	b, err := os.ReadFile(filepath.Join(repoRoot(), "docker-compose.yml"))
	require.NoError(t, err)
	var compose struct {
		Env      map[string]string `yaml:"x-uvr-env"`
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &compose))
	require.NotEmpty(t, compose.Env, "docker-compose.yml x-uvr-env")
	for k := range compose.Env {
		check("docker-compose.yml x-uvr-env", k)
	}
	for name, s := range compose.Services {
		if !strings.HasPrefix(name, "uvr-") {
			continue
		}
		for k := range s.Environment {
			check("docker-compose.yml "+name, k)
		}
	}
}

var (
	dockerUser   = regexp.MustCompile(`(?m)^USER\s+(\d+)(?::\d+)?\s*$`)
	dockerBinary = regexp.MustCompile(`(?m)^COPY --from=build \S+ (\S+)\s*$`)
)

// dockerfileUserAndBinary reads the numeric user and the binary path of deploy/Dockerfile.
func dockerfileUserAndBinary(t *testing.T) (int, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "deploy", "Dockerfile"))
	require.NoError(t, err)
	u := dockerUser.FindSubmatch(b)
	require.NotNil(t, u, "deploy/Dockerfile needs a numeric USER (runAsNonRoot cannot verify a name)")
	uid, err := strconv.Atoi(string(u[1]))
	require.NoError(t, err)
	require.NotZero(t, uid)
	bin := dockerBinary.FindSubmatch(b)
	require.NotNil(t, bin, "deploy/Dockerfile: COPY --from=build <binary> <path>")
	return uid, string(bin[1])
}

// kafka.yaml is a cluster of three KRaft nodes with three replicas of every topic and two in
// sync, that forms its quorum (Parallel pods, a headless Service listing unready pods), keeps
// one node per machine and lets one node go at a time; uvr-config lists every broker by its
// stable name and asks uvr for RF 3 / min ISR 2.
func TestKafkaIsAThreeNodeCluster(t *testing.T) {
	_, objs := load(t)
	sts := find(objs, "StatefulSet", "kafka")
	require.NotNil(t, sts, "StatefulSet kafka (kafka.yaml)")
	var spec struct {
		ServiceName         string `yaml:"serviceName"`
		Replicas            int    `yaml:"replicas"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		Selector            struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Affinity struct {
					PodAntiAffinity struct {
						Required []struct {
							TopologyKey string `yaml:"topologyKey"`
						} `yaml:"requiredDuringSchedulingIgnoredDuringExecution"`
					} `yaml:"podAntiAffinity"`
				} `yaml:"affinity"`
				Containers []struct {
					Env []struct {
						Name      string `yaml:"name"`
						Value     string `yaml:"value"`
						ValueFrom struct {
							FieldRef struct {
								FieldPath string `yaml:"fieldPath"`
							} `yaml:"fieldRef"`
						} `yaml:"valueFrom"`
					} `yaml:"env"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	}
	require.NoError(t, sts.Spec.Decode(&spec))
	require.Equal(t, 3, spec.Replicas)
	require.Equal(t, "Parallel", spec.PodManagementPolicy, "the voters must start together to form a quorum")
	for k, v := range spec.Selector.MatchLabels {
		require.Equal(t, v, spec.Template.Metadata.Labels[k], "selector %s=%s does not select the pod template", k, v)
	}
	require.NotEmpty(t, spec.VolumeClaimTemplates, "the log needs persistent volumes")
	require.Len(t, spec.Template.Spec.Affinity.PodAntiAffinity.Required, 1)
	require.Equal(t, "kubernetes.io/hostname", spec.Template.Spec.Affinity.PodAntiAffinity.Required[0].TopologyKey)

	svc := find(objs, "Service", spec.ServiceName)
	require.NotNil(t, svc, "the StatefulSet's governing Service %s", spec.ServiceName)
	var headless struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
	}
	require.NoError(t, svc.Spec.Decode(&headless))
	require.Equal(t, "None", headless.ClusterIP, "headless: one DNS name per pod")
	require.True(t, headless.PublishNotReadyAddresses, "the voters resolve each other before they are ready")
	for k, v := range headless.Selector {
		require.Equal(t, v, spec.Template.Metadata.Labels[k])
	}

	require.Len(t, spec.Template.Spec.Containers, 1)
	env := map[string]string{}
	fields := map[string]string{}
	for _, e := range spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
		fields[e.Name] = e.ValueFrom.FieldRef.FieldPath
	}
	require.Equal(t, "metadata.labels['apps.kubernetes.io/pod-index']", fields["KAFKA_NODE_ID"], "node id = pod ordinal")
	require.Equal(t, "broker,controller", env["KAFKA_PROCESS_ROLES"])
	for setting, want := range map[string]string{
		"KAFKA_DEFAULT_REPLICATION_FACTOR":               "3",
		"KAFKA_MIN_INSYNC_REPLICAS":                      "2",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "3",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "2",
		"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":           "false",
	} {
		require.Equal(t, want, env[setting], setting)
	}
	var voters, brokers []string
	for i := range spec.Replicas {
		host := fmt.Sprintf("%s-%d.%s", sts.Metadata.Name, i, spec.ServiceName)
		voters = append(voters, fmt.Sprintf("%d@%s:9093", i, host))
		brokers = append(brokers, host+":9092")
	}
	require.ElementsMatch(t, voters, strings.Split(env["KAFKA_CONTROLLER_QUORUM_VOTERS"], ","), "every pod is a voter")
	require.Equal(t, "PLAINTEXT://$(POD_NAME)."+spec.ServiceName+":9092", env["KAFKA_ADVERTISED_LISTENERS"])

	pdb := find(objs, "PodDisruptionBudget", "kafka")
	require.NotNil(t, pdb, "PodDisruptionBudget kafka")
	var budget struct {
		MaxUnavailable int `yaml:"maxUnavailable"`
		Selector       struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
	}
	require.NoError(t, pdb.Spec.Decode(&budget))
	require.Equal(t, 1, budget.MaxUnavailable, "with min ISR 2 of 3, one node at a time")
	require.Equal(t, spec.Selector.MatchLabels, budget.Selector.MatchLabels)

	cm := find(objs, "ConfigMap", "uvr-config")
	require.NotNil(t, cm)
	require.ElementsMatch(t, brokers, strings.Split(cm.Data["UVR_KAFKA_BROKERS"], ","), "uvr bootstraps from every broker")
	require.Equal(t, "3", cm.Data["UVR_KAFKA_REPLICATION_FACTOR"])
	require.Equal(t, "2", cm.Data["UVR_KAFKA_MIN_INSYNC_REPLICAS"])
}
