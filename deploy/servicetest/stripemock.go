package servicetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var stripeMock struct {
	once sync.Once
	err  error
}

// StripeMock returns the base URL (http://host:port, no /v1) of a running
// stripe-mock, Stripe's own mock of its API. UVR_STRIPE_MOCK_URL names one
// already running; otherwise `deploy/stripe-mock start` installs and starts
// it, once per test binary. A mock that cannot be had fails the test.
func StripeMock(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("UVR_STRIPE_MOCK_URL"); v != "" {
		return v
	}
	stripeMock.once.Do(func() {
		cmd := exec.Command(filepath.Join(Root(), "deploy", "stripe-mock"), "start")
		cmd.Dir = Root()
		if out, err := cmd.CombinedOutput(); err != nil {
			stripeMock.err = fmt.Errorf("deploy/stripe-mock start: %w\n%s", err, out)
		}
	})
	if stripeMock.err != nil {
		t.Fatalf("stripe-mock is not available: %v", stripeMock.err)
	}
	port := os.Getenv("UVR_STRIPE_MOCK_PORT")
	if port == "" {
		port = "12111"
	}
	return "http://127.0.0.1:" + port
}
