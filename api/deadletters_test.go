package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/deploy/servicetest"
	"github.com/uvrhq/uvr/pipeline/deadletter"
	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/pipeline/kafka"
	"github.com/uvrhq/uvr/pipeline/router"
)

// GET /api/deadletters lists a real dead-letter topic, a page at a time,
// to admins only, without the payload.
func TestDeadLettersAPI(t *testing.T) {
	brokers := servicetest.KafkaBrokers(t)
	topic := servicetest.Topic("test.api.deadletters")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	require.NoError(t, kafka.EnsureTopics(ctx, brokers, kafka.Security{}, []kafka.TopicSpec{{Name: topic, Partitions: 1}}))
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pub.Close() })
	// Three messages as the router parks them.
	for i := range 3 {
		msg := message.NewMessage("m"+strconv.Itoa(i), []byte(`{"secret":"payload"}`))
		msg.Metadata.Set(event.IDMetadata, "ev-"+strconv.Itoa(i))
		msg.Metadata.Set(event.SourceMetadata, "stripe")
		msg.Metadata.Set(event.TypeMetadata, event.TypeUsage)
		msg.Metadata.Set(router.ReasonMetadata, "insert into usage_by_day: row 3: column cost: too large")
		msg.Metadata.Set(router.ReasonClassMetadata, "value")
		msg.Metadata.Set(router.TopicMetadata, "uvr.events.v1")
		msg.Metadata.Set(router.HandlerMetadata, "rawevents")
		msg.Metadata.Set(router.PartitionMetadata, "2")
		msg.Metadata.Set(router.OffsetMetadata, strconv.Itoa(100+i))
		msg.Metadata.Set(router.TimeMetadata, "2026-05-01T10:00:00Z")
		require.NoError(t, pub.Publish(topic, msg))
	}
	store, err := deadletter.New(deadletter.Config{Brokers: brokers, Topic: topic})
	require.NoError(t, err)

	reg := prometheus.NewRegistry()
	cfg := api.Config{Addr: "127.0.0.1:0", EventsTopic: topic, Publisher: pub, DeadLetters: store,
		Logger: slog.New(slog.DiscardHandler), Registerer: reg, Gatherer: reg}
	wrap := withAuth(t, &cfg)
	server, err := api.New(cfg)
	require.NoError(t, err)
	h := wrap(server.Handler())
	doc := strictDoc(t)

	get := func(target string, header ...string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		validateResponse(t, doc, req, "/api/deadletters", rec)
		return rec
	}
	rec := get("/api/deadletters?limit=2&offset=1")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var body struct {
		DeadLetters []deadletter.Entry `json:"deadletters"`
		Total       int                `json:"total"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, 3, body.Total)
	require.Len(t, body.DeadLetters, 2)
	got := body.DeadLetters[0]
	assert.Equal(t, "0-1", got.ID)
	assert.Equal(t, "uvr.events.v1", got.Topic)
	assert.Equal(t, 2, got.Partition)
	assert.EqualValues(t, 101, got.Offset)
	assert.Equal(t, "ev-1", got.EventID)
	assert.Equal(t, "value", got.ReasonClass)
	assert.Equal(t, time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), got.Time)
	assert.Empty(t, got.Retries)
	assert.NotContains(t, rec.Body.String(), "payload", "never the message itself")

	rec = get("/api/deadletters?limit=0")
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), "limit")

	auth := cfg.Auth.(*access.Store)
	_, err = auth.Register(ctx, access.NewUser{Email: "viewer@uvr.test", Password: testAdminPassword, Role: access.RoleViewer})
	require.NoError(t, err)
	_, token, err := auth.Login(ctx, "viewer@uvr.test", testAdminPassword)
	require.NoError(t, err)
	rec = get("/api/deadletters", "Authorization", "Bearer "+token)
	assert.Equal(t, http.StatusForbidden, rec.Code, "admins only: a reason may quote an event's value")
}

// validateResponse checks rec against the document's response of route.
func validateResponse(t *testing.T, doc *openapi3.T, req *http.Request, route string, rec *httptest.ResponseRecorder) {
	t.Helper()
	item := doc.Paths.Value(route)
	require.NotNil(t, item, "%s is documented", route)
	op := item.GetOperation(req.Method)
	require.NotNil(t, op, "%s %s is documented", req.Method, route)
	err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req,
			Route:   &routers.Route{Spec: doc, Path: route, PathItem: item, Method: req.Method, Operation: op},
		},
		Status:  rec.Code,
		Header:  rec.Header(),
		Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
	assert.NoError(t, err, "response %d %s", rec.Code, rec.Body.String())
}
