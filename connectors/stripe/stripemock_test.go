package stripe_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/source"
	"github.com/uvrhq/uvr/connectors/source/sourcetest"
	"github.com/uvrhq/uvr/connectors/stripe"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Against stripe-mock, Stripe's own mock served from its OpenAPI spec: it
// rejects unknown parameters and returns one fixture object per list, so
// this proves the client path and the request shapes, not totals.
func TestStripeMockPeer(t *testing.T) {
	base := servicetest.StripeMock(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, logs := newSource(t, base, func(c *stripe.Config) {
		c.APIKey = "sk_test_123"
		c.PageSize = 100
		c.Start = time.Unix(1, 0) // sends created[gte] on every listing
	})
	require.NoError(t, s.Check(ctx))

	var out sourcetest.Collector
	require.NoError(t, s.Read(ctx, nil, &out))
	assert.Empty(t, out.Skipped, "every fixture object maps")
	assert.Equal(t, 7, out.Calls, "one page per stream")

	byID := map[string]event.Event{}
	for _, ev := range out.Events {
		require.NoError(t, ev.Validate(), ev.ID)
		byID[ev.ID] = ev
	}
	// The fixtures: a customer; a draft invoice, an uncaptured charge (and a
	// refund of it), a wholly refunded credit note and a dispute still open,
	// none of which moved money; an active subscription.
	require.Contains(t, byID, "cus_QXg1o8vcGmoR32")
	assert.Equal(t, event.TypeCustomer, byID["cus_QXg1o8vcGmoR32"].Type)
	assert.Equal(t, "test", byID["cus_QXg1o8vcGmoR32"].Data.Environment)
	require.Contains(t, byID, "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw")
	assert.Equal(t, "cus_QXg1o8vcGmoR32", byID["sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"].Data.Customer.ExternalID)
	assert.Len(t, byID, 2)

	cur := cursorOf(t, out.LastCursor())
	assert.Equal(t, int64(1234567890), cur["invoices"].Since, "the fixture's created")
	assert.Equal(t, int64(1234567890), cur["charges"].Since)

	// The next sync from that cursor is accepted too (created[gte] set).
	var again sourcetest.Collector
	require.NoError(t, s.Read(ctx, out.LastCursor(), &again))
	assert.NotContains(t, logs.String(), "sk_test_123")

	// stripe-mock refuses a key that is not a test key: an AuthError.
	bad, _ := newSource(t, base, func(c *stripe.Config) { c.APIKey = "not_a_key_9f8e7d" })
	err := bad.Check(ctx)
	var auth *source.AuthError
	require.ErrorAs(t, err, &auth)
	assert.Equal(t, http.StatusUnauthorized, auth.Status)
	assert.NotContains(t, err.Error(), "not_a_key_9f8e7d")
}

// account_id reads a connected account: every call carries it as the
// Stripe-Account header (stripe-mock accepts it; a recording proxy in front
// sees it on each request), and without it no call does.
func TestStripeAccountHeader(t *testing.T) {
	base, err := url.Parse(servicetest.StripeMock(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, account := range []string{"acct_1PlantedConnect", ""} {
		var mu sync.Mutex
		var seen []string
		proxy := httputil.NewSingleHostReverseProxy(base)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.URL.Path+" "+r.Header.Get("Stripe-Account"))
			mu.Unlock()
			proxy.ServeHTTP(w, r)
		}))
		creds := map[string]string{"api_key": "sk_test_123", "base_url": srv.URL}
		if account != "" {
			creds["account_id"] = account
		}
		s, err := stripe.FromCredentials(creds, sourcetest.Local(t))
		require.NoError(t, err)
		require.NoError(t, s.Check(ctx))
		var out sourcetest.Collector
		require.NoError(t, s.Read(ctx, nil, &out))
		assert.NotEmpty(t, out.Events, "stripe-mock answered through the proxy")
		srv.Close()
		mu.Lock()
		require.NotEmpty(t, seen)
		for _, line := range seen {
			assert.True(t, strings.HasSuffix(line, " "+account), "%q carries Stripe-Account %q", line, account)
		}
		mu.Unlock()
	}
}
