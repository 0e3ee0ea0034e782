package source_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
)

func TestEgressCheckURL(t *testing.T) {
	allowing, err := source.ParseEgress([]string{"stripe-mock", "127.0.0.1", "10.1.0.0/16", " "})
	require.NoError(t, err)
	for _, tc := range []struct {
		url    string
		policy source.Egress
		reason string // "" = accepted
	}{
		{url: "https://api.stripe.com", reason: ""},
		{url: "https://93.184.216.34/v1", reason: ""},
		{url: "https://[2606:4700::1111]", reason: ""},
		{url: "http://api.stripe.com", reason: "plain http"},
		{url: "ftp://api.stripe.com", reason: "absolute https URL"},
		{url: "/v1/accounts", reason: "absolute https URL"},
		{url: "https://127.0.0.1:12111", reason: "loopback"},
		{url: "https://[::1]", reason: "loopback"},
		{url: "https://localhost", reason: "loopback"},
		{url: "https://api.localhost", reason: "loopback"},
		{url: "https://169.254.169.254/latest/meta-data", reason: "link-local"},
		{url: "https://[fe80::1]", reason: "link-local"},
		{url: "https://[::ffff:169.254.169.254]", reason: "link-local"},
		{url: "https://10.0.0.8", reason: "private"},
		{url: "https://172.16.3.4", reason: "private"},
		{url: "https://192.168.1.1", reason: "private"},
		{url: "https://[fd00::1]", reason: "private"},
		{url: "https://100.64.0.1", reason: "private"},
		{url: "https://0.0.0.0", reason: "unspecified"},
		{url: "https://[::]", reason: "unspecified"},
		{url: "https://224.0.0.1", reason: "multicast"},
		{url: "https://[ff02::1]", reason: "multicast"},
		{url: "https://[64:ff9b::a9fe:a9fe]", reason: "link-local"},
		// The operator's opt-in: those hosts, over http too; nothing else.
		{url: "http://127.0.0.1:12111", policy: allowing, reason: ""},
		{url: "http://stripe-mock:12111", policy: allowing, reason: ""},
		{url: "http://10.1.2.3", policy: allowing, reason: ""},
		{url: "https://10.2.0.1", policy: allowing, reason: "private"},
		{url: "https://127.0.0.2", policy: allowing, reason: "loopback"},
		{url: "http://api.stripe.com", policy: allowing, reason: "plain http"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := tc.policy.CheckURL("base_url", tc.url)
			if tc.reason == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, source.IsEgress(err))
			assert.Contains(t, err.Error(), "base_url: ")
			assert.Contains(t, err.Error(), tc.reason)
			assert.Contains(t, err.Error(), source.AllowPrivateHostsEnv)
		})
	}
}

func TestParseEgressRefusesMalformedEntries(t *testing.T) {
	_, err := source.ParseEgress([]string{"10.0.0.0/33", "user@host", "ok-host"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"10.0.0.0/33"`)
	assert.Contains(t, err.Error(), `"user@host"`)
	assert.NotContains(t, err.Error(), "ok-host")
}

// The address dialled is judged after name resolution: "localhost" passes
// no URL check by its name alone here (it is not an address literal), yet
// the connection to what it resolves to (loopback) is refused.
func TestEgressClientRefusesResolvedPrivateAddresses(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	var strict source.Egress
	_, err := strict.Client(5 * time.Second).Get(byName)
	require.Error(t, err)
	assert.True(t, source.IsEgress(err), "%v", err)
	assert.Contains(t, err.Error(), "loopback")
	assert.Zero(t, hits.Load(), "the server was reached")

	// Allowed by address: the same name now connects.
	local, err := source.ParseEgress([]string{"127.0.0.0/8", "::1"})
	require.NoError(t, err)
	resp, err := local.Client(5 * time.Second).Get(byName)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.EqualValues(t, 1, hits.Load())

	// A nil policy is an unrestricted client (addresses the operator set).
	var none *source.Egress
	resp, err = none.Client(5 * time.Second).Get(srv.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
}

// A redirect may not take the credential to another host, nor to a refused one.
func TestEgressClientRefusesRedirectsElsewhere(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.RedirectHandler(strings.Replace(other.URL, "127.0.0.1", "localhost", 1), http.StatusFound))
	t.Cleanup(srv.Close)
	local, err := source.ParseEgress([]string{"127.0.0.1"})
	require.NoError(t, err)
	_, err = local.Client(5 * time.Second).Get(srv.URL)
	require.Error(t, err)
	assert.True(t, source.IsEgress(err), "%v", err)
	assert.Contains(t, err.Error(), "leave the configured host")
	assert.Zero(t, elsewhere.Load())
}

// source.HTTP with a policy checks its base URL when built and keeps the
// refusal recognisable (IsEgress) through its error, which names no secret.
func TestHTTPWithEgress(t *testing.T) {
	var strict source.Egress
	_, err := source.NewHTTP(source.HTTPConfig{Service: "svc", BaseURL: "https://169.254.169.254", Egress: &strict})
	require.Error(t, err)
	assert.True(t, source.IsEgress(err))

	// A refusal after the build (here a redirect to another host) comes
	// back as itself, without the key.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/v1/x?key="+secret, http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	local, err := source.ParseEgress([]string{"127.0.0.1"})
	require.NoError(t, err)
	h, err := source.NewHTTP(source.HTTPConfig{Service: "svc", BaseURL: srv.URL, Egress: &local, Retries: -1, Secrets: []string{secret},
		Authorize: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+secret) }})
	require.NoError(t, err)
	err = h.GetJSON(context.Background(), "/v1/x", nil, nil)
	require.Error(t, err)
	assert.True(t, source.IsEgress(err), "%v", err)
	assert.NotContains(t, err.Error(), secret)
}

// A next-page URL the service hands back is followed only on the configured
// scheme and host: the credential goes with it.
func TestHTTPFollowsNextLinksOnlyOnItsHost(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	var paths []string
	c := newClient(t, func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.URL.RequestURI())
		_, _ = w.Write([]byte(`{}`))
	})
	ctx := context.Background()
	for _, next := range []string{other.URL + "/v1/list?cursor=2", "//" + strings.TrimPrefix(other.URL, "http://") + "/v1/list?cursor=2",
		strings.Replace(other.URL, "http://", "https://", 1) + "/x?y=1"} {
		err := c.GetJSON(ctx, next, nil, nil)
		require.Error(t, err, next)
		assert.Contains(t, err.Error(), "is not followed")
	}
	assert.Zero(t, elsewhere.Load(), "the credential reached another host")
	require.NoError(t, c.GetJSON(ctx, "/v1/list?cursor=3", nil, nil))
	assert.Equal(t, []string{"/v1/list?cursor=3"}, paths)
}
