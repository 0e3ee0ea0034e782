package deploy_test

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/uvrhq/uvr/deploy/servicetest"
)

// The Prometheus files are checked with the real promtool (Debian's prometheus package,
// which deploy/services installs): the config, the alert rules, and the rules' unit tests.
// The structural tests below add what promtool cannot know: that the rules only use metrics
// uvr exports, that every alert is tested both ways, and that docs/operations.md lists
// every metric and alert.

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (it comes with Debian's prometheus package): run `deploy/services prometheus install` (make test does it through `deploy/services all start`): %v", err)
	}
	return p
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s failed:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func promDir() string { return filepath.Join(servicetest.Root(), "deploy", "prometheus") }

const rulesFile = "uvr.rules.yml"

// prometheus.yml resolves rules/ and targets/ beside itself; each setup supplies them
// (deploy/services links rules/ and writes targets/, compose mounts both). The check runs on
// a copy laid out the way compose mounts it, so it also proves the rule glob does not pick
// up the unit-test file and that the compose targets file is valid file_sd.
func TestPrometheusConfigIsValid(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, filepath.Join(promDir(), "prometheus.yml"), filepath.Join(dir, "prometheus.yml"))
	copyDir(t, filepath.Join(promDir(), "rules"), filepath.Join(dir, "rules"))
	copyDir(t, filepath.Join(promDir(), "targets-compose"), filepath.Join(dir, "targets"))

	out := runPromtool(t, dir, "check", "config", "prometheus.yml")
	// The rule file is loaded (not just a glob matching nothing) and the tests are not.
	require.Contains(t, out, filepath.Join("rules", rulesFile), out)
	require.NotContains(t, out, "rules.test.yml", out)
}

func TestAlertRulesAreValid(t *testing.T) {
	out := runPromtool(t, filepath.Join(promDir(), "rules"), "check", "rules", rulesFile)
	require.Contains(t, out, "SUCCESS", out)
}

func TestAlertRuleUnitTests(t *testing.T) {
	out := runPromtool(t, filepath.Join(promDir(), "rules"), "test", "rules", "uvr.rules.test.yml")
	require.Contains(t, out, "SUCCESS", out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTestFile struct {
	Tests []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			AlertName string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), path)
}

var metricRef = regexp.MustCompile(`\buvr_[a-z0-9_]+`)

// Every alert: a severity the routing understands, a summary and a description, a `for`;
// every uvr_ metric it reads is one the code exports; and the unit tests evaluate it at
// least once where it must fire and once where it must not.
func TestAlertRulesAreCompleteAndTested(t *testing.T) {
	var rules ruleFile
	loadYAML(t, filepath.Join(promDir(), "rules", rulesFile), &rules)
	var tests ruleTestFile
	loadYAML(t, filepath.Join(promDir(), "rules", "uvr.rules.test.yml"), &tests)
	exported := exportedMetrics(t)

	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				silent[a.AlertName] = true
			}
		}
	}

	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s has a rule that is not an alert (expr %q); add recording rules to this test first", g.Name, r.Expr)
			alerts = append(alerts, r.Alert)
			require.Contains(t, []string{"critical", "warning"}, r.Labels["severity"], "%s: severity label", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], "%s: summary annotation", r.Alert)
			require.NotEmpty(t, r.Annotations["description"], "%s: description annotation", r.Alert)
			require.NotEmpty(t, r.For, "%s: for duration", r.Alert)
			for _, m := range metricRef.FindAllString(r.Expr, -1) {
				require.True(t, exported[baseMetric(m, exported)], "%s reads %s, which no uvr code exports (exported: %v)", r.Alert, m, sortedKeys(exported))
			}
			require.True(t, fires[r.Alert], "%s: no unit test where it fires", r.Alert)
			require.True(t, silent[r.Alert], "%s: no unit test where it must not fire", r.Alert)
		}
	}
	require.NotEmpty(t, alerts)
	for name := range fires {
		require.Contains(t, alerts, name, "the unit tests name an alert the rules do not define")
	}
}

// docs/operations.md is where operators look up a metric or an alert: it must name all of them.
func TestOperationsDocListsEveryMetricAndAlert(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(servicetest.Root(), "docs", "operations.md"))
	require.NoError(t, err)
	doc := string(b)
	for _, m := range sortedKeys(exportedMetrics(t)) {
		require.Contains(t, doc, "`"+m+"`", "docs/operations.md does not list metric %s", m)
	}
	var rules ruleFile
	loadYAML(t, filepath.Join(promDir(), "rules", rulesFile), &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.Contains(t, doc, r.Alert, "docs/operations.md does not describe alert %s", r.Alert)
		}
	}
}

var metricName = regexp.MustCompile(`Name:\s*"(uvr_[a-z0-9_]+)"`)

// exportedMetrics are the metric names declared in the non-test Go code (Name: "uvr_…" in
// the collectors' Opts).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := servicetest.Root()
	names := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "var", "node_modules", "testdata", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range metricName.FindAllSubmatch(b, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(names), 10, "found too few uvr_ metrics in the Go code: the scan is broken")
	return names
}

// baseMetric maps a histogram's series (_bucket, _sum, _count) to its declared name.
func baseMetric(m string, exported map[string]bool) string {
	if exported[m] {
		return m
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(m, suffix); ok && exported[base] {
			return base
		}
	}
	return m
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(to, b, 0o644))
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o755))
	entries, err := os.ReadDir(from)
	require.NoError(t, err)
	require.True(t, slices.ContainsFunc(entries, func(e os.DirEntry) bool { return !e.IsDir() }), "%s is empty", from)
	for _, e := range entries {
		if !e.IsDir() {
			copyFile(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()))
		}
	}
}
