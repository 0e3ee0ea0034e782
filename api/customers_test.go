package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/projections/customers"
)

// customersServer is an api.Server whose customer directory lives on a new
// topic of the real Kafka, holding two customers by email (Ann, on Stripe
// and Chargebee), one by metadata id (bob-corp), a usage key and the
// unmapped bucket.
func customersServer(t *testing.T, withDirectory bool) (http.Handler, *customers.Directory) {
	t.Helper()
	brokers := servicetest.KafkaBrokers(t)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	cfg := api.Config{
		Addr: "127.0.0.1:0", EventsTopic: servicetest.Topic("test.api.events"), Publisher: pub, // not called by these routes
		Logger: slog.New(slog.DiscardHandler),
	}
	var dir *customers.Directory
	if withDirectory {
		table, err := kafka.NewTable(kafka.TableConfig{Brokers: brokers, Topic: servicetest.Topic("test.api.customers")})
		require.NoError(t, err)
		t.Cleanup(func() { _ = table.Close() })
		dir, err = customers.New(customers.Config{Table: table})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		n := 0
		ev := func(typ, source, id, email string, meta map[string]string) event.Event {
			n++ // distinct times: the customer event applied last names the customer
			return event.Event{SpecVersion: event.SpecVersion, ID: "e-" + id, Source: source, Type: typ, Time: at.Add(time.Duration(n) * time.Second),
				Data: event.Data{Customer: event.Customer{Source: source, ExternalID: id, Email: email, Name: id}, Version: 1, Metadata: meta}}
		}
		for _, e := range []event.Event{
			ev(event.TypeCustomer, "stripe", "cus_ann", "ann@example.com", nil),
			ev(event.TypeCustomer, "chargebee", "ann-1", "Ann@Example.com", nil),
			ev(event.TypeCustomer, "stripe", "cus_bob", "bob@example.com", map[string]string{customers.MetadataIDKey: "bob-corp"}),
			ev(event.TypeUsage, "openai", "proj_1", "", nil),
			ev(event.TypeRevenue, "stripe", "unmapped", "", nil),
		} {
			require.NoError(t, dir.Observe(ctx, e))
		}
		cfg.Customers = dir
	}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	return wrap(server.Handler()), dir
}

func send(t *testing.T, h http.Handler, method, path, body string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var out map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out), rec.Body.String())
	return rec.Code, out
}

func refsOf(t *testing.T, customer any) []string {
	t.Helper()
	c, ok := customer.(map[string]any)
	require.True(t, ok, "%v", customer)
	var out []string
	for _, r := range c["references"].([]any) {
		m := r.(map[string]any)
		out = append(out, m["source"].(string)+"/"+m["external_id"].(string))
	}
	return out
}

func TestCustomerRoutes(t *testing.T) {
	h, _ := customersServer(t, true)
	ann := customers.SelfID(customers.Ref{Source: "stripe", ExternalID: "cus_ann"})

	code, body := send(t, h, http.MethodGet, "/api/customer-references", "")
	require.Equal(t, http.StatusOK, code, body)
	refs := body["references"].([]any)
	require.Len(t, refs, 5)
	assert.Equal(t, map[string]any{"source": "chargebee", "external_id": "ann-1", "customer_id": ann,
		"customer_name": "ann-1", "rule": "email", "email": "ann@example.com"}, refs[0], "sorted by source, then external id")
	assert.Equal(t, 5.0, body["total"])

	// Paged: limit and offset over the same order, the total of every page.
	code, body = send(t, h, http.MethodGet, "/api/customer-references?limit=2&offset=1", "")
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, refs[1:3], body["references"])
	assert.Equal(t, 5.0, body["total"])
	code, _ = send(t, h, http.MethodGet, "/api/customer-references?limit=50001", "")
	assert.Equal(t, http.StatusBadRequest, code)

	code, body = send(t, h, http.MethodGet, "/api/customer-references?unmapped=true", "")
	require.Equal(t, http.StatusOK, code, body)
	var unmapped []string
	for _, r := range body["references"].([]any) {
		m := r.(map[string]any)
		unmapped = append(unmapped, m["source"].(string)+"/"+m["external_id"].(string)+"→"+m["customer_id"].(string))
	}
	assert.Equal(t, []string{
		"openai/proj_1→" + customers.SelfID(customers.Ref{Source: "openai", ExternalID: "proj_1"}),
		"stripe/unmapped→unmapped",
	}, unmapped)

	// Link a usage key to a customer.
	code, body = send(t, h, http.MethodPost, "/api/customers/link", `{"source":"openai","external_id":"proj_1","customer_id":"bob-corp"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "bob-corp", body["customer"].(map[string]any)["id"])
	assert.Equal(t, []string{"openai/proj_1", "stripe/cus_bob"}, refsOf(t, body["customer"]))

	// Unlink: the reference becomes its own customer.
	code, body = send(t, h, http.MethodPost, "/api/customers/unlink", `{"source":"chargebee","external_id":"ann-1"}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, []string{"chargebee/ann-1"}, refsOf(t, body["customer"]))
	annSolo := body["customer"].(map[string]any)["id"].(string)
	assert.NotEqual(t, ann, annSolo)

	// Merge: the merged id is an alias of the survivor.
	code, body = send(t, h, http.MethodPost, "/api/customers/merge", `{"customer_id":"`+annSolo+`","into":"`+ann+`"}`)
	require.Equal(t, http.StatusOK, code, body)
	merged := body["customer"].(map[string]any)
	assert.Equal(t, ann, merged["id"])
	assert.Equal(t, []any{annSolo}, merged["aliases"])
	assert.Equal(t, []string{"chargebee/ann-1", "stripe/cus_ann"}, refsOf(t, merged))

	// Split one reference back out.
	code, body = send(t, h, http.MethodPost, "/api/customers/split",
		`{"customer_id":"`+annSolo+`","references":[{"source":"chargebee","external_id":"ann-1"}]}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, ann, body["customer"].(map[string]any)["id"], "an alias id names the customer it was merged into")
	assert.Equal(t, []string{"stripe/cus_ann"}, refsOf(t, body["customer"]))
	assert.Equal(t, []string{"chargebee/ann-1"}, refsOf(t, body["new_customer"]))
}

func TestCustomerRoutesErrors(t *testing.T) {
	h, _ := customersServer(t, true)
	ann := customers.SelfID(customers.Ref{Source: "stripe", ExternalID: "cus_ann"})
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		detail                   string
	}{
		{"link: no body", http.MethodPost, "/api/customers/link", ``, 400, "request body is empty"},
		{"link: not JSON", http.MethodPost, "/api/customers/link", `{`, 400, "not a valid JSON object"},
		{"link: wrong type", http.MethodPost, "/api/customers/link", `{"source":"openai","external_id":"p","customer_id":5}`, 400, "field customer_id must be a JSON string"},
		{"link: no customer_id", http.MethodPost, "/api/customers/link", `{"source":"openai","external_id":"p"}`, 400, "customer_id is required"},
		{"link: no source", http.MethodPost, "/api/customers/link", `{"external_id":"p","customer_id":"bob-corp"}`, 400, "source is required"},
		{"link: no external_id", http.MethodPost, "/api/customers/link", `{"source":"openai","customer_id":"bob-corp"}`, 400, "external_id is required"},
		{"link: the unmapped bucket", http.MethodPost, "/api/customers/link", `{"source":"stripe","external_id":"unmapped","customer_id":"bob-corp"}`, 400, "unmapped bucket"},
		{"link: unknown customer", http.MethodPost, "/api/customers/link", `{"source":"openai","external_id":"p","customer_id":"nobody"}`, 404, "customer nobody not found"},
		{"unlink: no external_id", http.MethodPost, "/api/customers/unlink", `{"source":"openai"}`, 400, "external_id is required"},
		{"unlink: unknown reference", http.MethodPost, "/api/customers/unlink", `{"source":"openai","external_id":"nope"}`, 404, "reference openai/nope not found"},
		{"merge: no into", http.MethodPost, "/api/customers/merge", `{"customer_id":"bob-corp"}`, 400, "into is required"},
		{"merge: no customer_id", http.MethodPost, "/api/customers/merge", `{"into":"bob-corp"}`, 400, "customer_id is required"},
		{"merge: into itself", http.MethodPost, "/api/customers/merge", `{"customer_id":"bob-corp","into":"bob-corp"}`, 400, "into: customer bob-corp is already customer bob-corp"},
		{"merge: unknown customer_id", http.MethodPost, "/api/customers/merge", `{"customer_id":"nobody","into":"bob-corp"}`, 404, "customer nobody not found"},
		{"merge: unknown into", http.MethodPost, "/api/customers/merge", `{"customer_id":"bob-corp","into":"nobody"}`, 404, "customer nobody not found"},
		{"merge: the unmapped customer", http.MethodPost, "/api/customers/merge", `{"customer_id":"unmapped","into":"bob-corp"}`, 400, "unmapped customer cannot be merged"},
		{"split: no references", http.MethodPost, "/api/customers/split", `{"customer_id":"` + ann + `"}`, 400, "references must list at least one"},
		{"split: references not an array", http.MethodPost, "/api/customers/split", `{"customer_id":"x","references":{}}`, 400, "field references must be a JSON array"},
		{"split: bad reference", http.MethodPost, "/api/customers/split", `{"customer_id":"` + ann + `","references":[{"source":"stripe"}]}`, 400, "references[0].external_id is required"},
		{"split: foreign reference", http.MethodPost, "/api/customers/split", `{"customer_id":"` + ann + `","references":[{"source":"stripe","external_id":"cus_bob"}]}`, 400, "references[0]: stripe/cus_bob does not belong to customer " + ann},
		{"split: every reference", http.MethodPost, "/api/customers/split", `{"customer_id":"` + ann + `","references":[{"source":"stripe","external_id":"cus_ann"},{"source":"chargebee","external_id":"ann-1"}]}`, 400, "would leave it empty"},
		{"split: unknown customer", http.MethodPost, "/api/customers/split", `{"customer_id":"nobody","references":[{"source":"stripe","external_id":"cus_ann"}]}`, 404, "customer nobody not found"},
		{"references: bad unmapped", http.MethodGet, "/api/customer-references?unmapped=maybe", ``, 400, "unmapped must be true or false"},
		{"list route needs the analytics", http.MethodGet, "/api/customers", ``, 503, "customer analytics are not enabled"}, // analytics.go
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := send(t, h, tc.method, tc.path, tc.body)
			assert.Equal(t, tc.status, code, body)
			assert.Contains(t, body["detail"], tc.detail)
		})
	}
}

// Without a directory the identity routes answer 503 naming what is missing.
func TestCustomerRoutesNeedADirectory(t *testing.T) {
	h, _ := customersServer(t, false)
	code, body := send(t, h, http.MethodPost, "/api/customers/link", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, code, body)
	assert.Equal(t, "the customer directory is not enabled on this server", body["detail"])
}
