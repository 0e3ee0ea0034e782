package sourcetest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fatalRecorder keeps what Fatalf was given instead of stopping the test, so
// the failure of a missing sample can be looked at.
type fatalRecorder struct {
	testing.TB
	fatal string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }

func TestSamples(t *testing.T) {
	dir, err := filepath.Abs("testdata")
	require.NoError(t, err)
	for _, tt := range []struct {
		name  string
		parts []string
		fatal string // "" when the sample is there
	}{
		{"file", []string{"airbyte-stripe", "expected_records.jsonl"}, ""},
		{"directory", []string{"paddle", "python-sdk"}, ""},
		{"missing", []string{"airbyte-stripe", "none.jsonl"},
			"recorded sample: stat " + filepath.Join(dir, "airbyte-stripe", "none.jsonl") + ": no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &fatalRecorder{TB: t}
			p := Samples(r, tt.parts...)
			assert.Equal(t, filepath.Join(append([]string{dir}, tt.parts...)...), p, "inside the repository")
			assert.Equal(t, tt.fatal, r.fatal)
			if tt.fatal == "" {
				_, err := os.Stat(p)
				assert.NoError(t, err)
			}
		})
	}
}
