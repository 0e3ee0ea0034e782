package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/connectors/catalog"
)

type serviceType struct {
	Name     string            `json:"name"`
	Category string            `json:"category"`
	Required []string          `json:"required"`
	Optional []string          `json:"optional"`
	Help     map[string]string `json:"help"`
	Native   bool              `json:"native"`
}

// getServiceTypes calls GET /api/service-types on a and checks the answer
// against the document's closed schema for its status.
func getServiceTypes(t *testing.T, a *servicesAPI) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/api/service-types", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	doc := strictDoc(t)
	item := doc.Paths.Value("/api/service-types")
	require.NotNil(t, item, "/api/service-types is documented")
	require.NotNil(t, item.Get, "GET /api/service-types is documented")
	err = openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req,
			Route:   &routers.Route{Spec: doc, Path: "/api/service-types", PathItem: item, Method: http.MethodGet, Operation: item.Get},
		},
		Status: resp.StatusCode, Header: resp.Header,
		Body:    io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	assert.NoError(t, err, "response %d %s", resp.StatusCode, raw)
	return resp.StatusCode, raw
}

// The API lists the registry's own catalog (every built-in type, in name
// order, with its fields as the catalog declares them) and says which types
// have a connector in this uvr: here only stripe was given a factory.
func TestServiceTypesListTheRegistryCatalog(t *testing.T) {
	a := newServicesAPI(t, true)
	status, raw := getServiceTypes(t, a)
	require.Equal(t, http.StatusOK, status, string(raw))
	var body struct {
		ServiceTypes []serviceType `json:"service_types"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))

	builtin := catalog.Builtin()
	slices.SortFunc(builtin, func(x, y catalog.Type) int { return strings.Compare(x.Name, y.Name) })
	want := make([]serviceType, 0, len(builtin))
	for _, typ := range builtin {
		opt := typ.Optional
		if opt == nil {
			opt = []string{}
		}
		want = append(want, serviceType{Name: typ.Name, Category: string(typ.Category), Required: typ.Required, Optional: opt, Help: typ.Help, Native: typ.Name == "stripe"})
	}
	assert.Equal(t, want, body.ServiceTypes)

	// What the form is built from is what creating a service accepts: the
	// listed required fields of a type are enough, and nothing is unknown.
	var stripe serviceType
	for _, st := range body.ServiceTypes {
		if st.Name == "stripe" {
			stripe = st
		}
	}
	require.Equal(t, []string{"api_key"}, stripe.Required)
	creds := map[string]string{}
	for _, f := range stripe.Required {
		creds[f] = goodKey
	}
	payload, err := json.Marshal(map[string]any{"service_type": stripe.Name, "service_name": "from the listed fields", "service_category": stripe.Category, "credentials": creds})
	require.NoError(t, err)
	created, resp := a.do(t, http.MethodPost, "/api/services", string(payload))
	assert.Equal(t, http.StatusCreated, created, resp)
}

func TestServiceTypesWithoutRegistry(t *testing.T) {
	a := newServicesAPI(t, false)
	status, raw := getServiceTypes(t, a)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, string(raw), "not enabled")
}
