package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The projector keeps the customer directory current from the events topic:
// two sources' customer events with one email resolve to one customer, and a
// reference seen only in usage is its own customer, listed as unmapped.
func TestCustomerDirectoryFollowsEvents(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	m := startMain(t, cfg, Roles{API: true, Projector: true})
	body := `[
	 {"specversion":"1.0","id":"c1","source":"stripe","type":"uvr.customer.v1","time":"2026-11-01T00:00:00Z",
	  "data":{"customer":{"external_id":"cus_1","email":"Ops@Acme.io","name":"Acme"},"plan":"pro"}},
	 {"specversion":"1.0","id":"c2","source":"chargebee","type":"uvr.customer.v1","time":"2026-11-01T00:00:00Z",
	  "data":{"customer":{"external_id":"acme-cb","email":"ops@acme.io"}}},
	 {"specversion":"1.0","id":"u1","source":"openai","type":"uvr.usage.v1","time":"2026-11-01T00:00:00Z",
	  "data":{"customer":{"external_id":"proj_9"},"feature":"gpt-4o.input_tokens","quantity":"10"}}]`
	status, resp := post(t, m.URL()+"/api/events", "application/cloudevents-batch+json", []byte(body))
	require.Equal(t, http.StatusAccepted, status, resp)

	type ref struct {
		Source     string `json:"source"`
		ExternalID string `json:"external_id"`
		CustomerID string `json:"customer_id"`
		Rule       string `json:"rule"`
	}
	byRef := map[string]ref{}
	require.Eventually(t, func() bool {
		code, raw := getBody(t, m.URL()+"/api/customer-references")
		if code != http.StatusOK {
			return false
		}
		var list struct{ References []ref }
		if json.Unmarshal([]byte(raw), &list) != nil {
			return false
		}
		byRef = map[string]ref{}
		for _, r := range list.References {
			byRef[r.Source+"/"+r.ExternalID] = r
		}
		return len(byRef) == 3
	}, time.Minute, 100*time.Millisecond, "the directory never saw the three references: %v", byRef)
	assert.Equal(t, byRef["stripe/cus_1"].CustomerID, byRef["chargebee/acme-cb"].CustomerID, "one email, one customer")
	assert.NotEqual(t, byRef["stripe/cus_1"].CustomerID, byRef["openai/proj_9"].CustomerID)
	assert.Equal(t, "self", byRef["openai/proj_9"].Rule)

	code, raw := getBody(t, m.URL()+"/api/customer-references?unmapped=true")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, raw, "proj_9")
	assert.NotContains(t, raw, "cus_1")
}
