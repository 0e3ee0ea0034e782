package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/uvrhq/uvr/api"
	"github.com/uvrhq/uvr/deploy/servicetest"
)

// An admin changes roles, deactivates, reactivates and deletes users on the
// real router; the changes apply to the next request, API keys follow their
// creator, and the last active admin stays.
func TestUserAdministration(t *testing.T) {
	h, _, logs := authAPI(t)
	var bodies strings.Builder
	send := documentedClient(t, h, &bodies)
	const jsonCT = "application/json"
	login := func(email, password string) string {
		t.Helper()
		status, body := send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded",
			url.Values{"username": {email}, "password": {password}}.Encode(), "")
		require.Equal(t, http.StatusOK, status, body)
		return body["access_token"].(string)
	}
	status, body := send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"ann@example.com","password":"ann-password"}`, "")
	require.Equal(t, http.StatusCreated, status, body)
	ann := body["access_token"].(string)
	annID := body["user"].(map[string]any)["id"].(string)
	status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"bob@example.com","password":"bob-password","role":"admin"}`, ann)
	require.Equal(t, http.StatusCreated, status, body)
	bobID := body["user"].(map[string]any)["id"].(string)
	bob := login("bob@example.com", "bob-password")
	status, body = send(t, "POST", "/api/auth/api-keys", "/api/auth/api-keys", jsonCT, `{"name":"bob's loader","role":"admin"}`, bob)
	require.Equal(t, http.StatusCreated, status, body)
	bobKey := body["key"].(string)

	status, body = send(t, "GET", "/api/users", "/api/users", "", "", ann)
	require.Equal(t, http.StatusOK, status, body)
	require.Len(t, body["users"], 2)
	assert.Equal(t, "ann@example.com", body["users"].([]any)[0].(map[string]any)["email"], "oldest first")

	user := "/api/users/{id}"
	for _, tc := range []struct {
		name, target, body, token string
		status                    int
		check                     func(t *testing.T, body map[string]any)
	}{
		{name: "bad role names the field", target: "/api/users/" + bobID, body: `{"role":"root"}`, token: ann, status: http.StatusBadRequest,
			check: func(t *testing.T, b map[string]any) {
				assert.Equal(t, "role", b["errors"].([]any)[0].(map[string]any)["field"])
			}},
		{name: "nothing to change", target: "/api/users/" + bobID, body: `{}`, token: ann, status: http.StatusBadRequest},
		{name: "unknown user", target: "/api/users/usr_nope", body: `{"role":"viewer"}`, token: ann, status: http.StatusNotFound},
		{name: "demote bob", target: "/api/users/" + bobID, body: `{"role":"viewer"}`, token: ann, status: http.StatusOK,
			check: func(t *testing.T, b map[string]any) { assert.Equal(t, "viewer", b["role"]) }},
		{name: "bob, now a viewer, may not administer", target: "/api/users/" + annID, body: `{"is_active":false}`, token: bob, status: http.StatusForbidden},
		{name: "the last active admin cannot be demoted", target: "/api/users/" + annID, body: `{"role":"analyst"}`, token: ann, status: http.StatusConflict,
			check: func(t *testing.T, b map[string]any) {
				assert.Contains(t, b["detail"], "last active admin cannot be demoted")
			}},
		{name: "nor deactivated", target: "/api/users/" + annID, body: `{"is_active":false}`, token: ann, status: http.StatusConflict,
			check: func(t *testing.T, b map[string]any) {
				assert.Contains(t, b["detail"], "last active admin cannot be deactivated")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := send(t, "PATCH", user, tc.target, jsonCT, tc.body, tc.token)
			require.Equal(t, tc.status, status, body)
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
	status, body = send(t, "DELETE", user, "/api/users/"+annID, "", "", ann)
	assert.Equal(t, http.StatusConflict, status, body)
	assert.Contains(t, body["detail"], "last active admin cannot be deleted")

	// The admin key of a demoted creator holds no more than a viewer's role.
	status, body = send(t, "GET", "/api/users", "/api/users", "", "", bobKey)
	assert.Equal(t, http.StatusForbidden, status, body)
	status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", bobKey)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "viewer", body["role"])

	// Deactivated: token and key refused at the next request; reactivated: both work again.
	status, body = send(t, "PATCH", user, "/api/users/"+bobID, jsonCT, `{"is_active":false,"role":"admin"}`, ann)
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, false, body["is_active"])
	for _, credential := range []string{bob, bobKey} {
		status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", credential)
		assert.Equal(t, http.StatusUnauthorized, status, body)
	}
	status, body = send(t, "POST", "/api/auth/login", "/api/auth/login", "application/x-www-form-urlencoded",
		url.Values{"username": {"bob@example.com"}, "password": {"bob-password"}}.Encode(), "")
	assert.Equal(t, http.StatusUnauthorized, status, body)
	status, body = send(t, "PATCH", user, "/api/users/"+bobID, jsonCT, `{"is_active":true}`, ann)
	require.Equal(t, http.StatusOK, status, body)
	for _, credential := range []string{bob, bobKey} {
		status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", credential)
		require.Equal(t, http.StatusOK, status, body)
		assert.Equal(t, "admin", body["role"])
	}

	// Two active admins: ann may now step down, then bob deletes her.
	status, body = send(t, "PATCH", user, "/api/users/"+annID, jsonCT, `{"role":"viewer"}`, ann)
	require.Equal(t, http.StatusOK, status, body)
	status, _ = send(t, "DELETE", user, "/api/users/"+annID, "", "", bob)
	require.Equal(t, http.StatusNoContent, status)
	status, body = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", ann)
	assert.Equal(t, http.StatusUnauthorized, status, "a deleted user's token: %v", body)
	status, _ = send(t, "DELETE", user, "/api/users/"+annID, "", "", bob)
	assert.Equal(t, http.StatusNotFound, status)

	// A deleted user's keys are revoked with the user (bob is the last
	// admin: another one first).
	status, body = send(t, "POST", "/api/auth/register", "/api/auth/register", jsonCT, `{"email":"cy@example.com","password":"cy-password","role":"admin"}`, bob)
	require.Equal(t, http.StatusCreated, status, body)
	cy := login("cy@example.com", "cy-password")
	status, _ = send(t, "DELETE", user, "/api/users/"+bobID, "", "", cy)
	require.Equal(t, http.StatusNoContent, status)
	status, body = send(t, "GET", "/api/auth/api-keys", "/api/auth/api-keys", "", "", cy)
	require.Equal(t, http.StatusOK, status, body)
	assert.Empty(t, body["api_keys"], "a deleted user's keys are revoked")
	status, _ = send(t, "GET", "/api/auth/me", "/api/auth/me", "", "", bobKey)
	assert.Equal(t, http.StatusUnauthorized, status)

	for _, secret := range []string{"ann-password", "bob-password", ann, bob, bobKey} {
		assert.NotContains(t, logs.String(), secret)
	}
	assert.NotContains(t, bodies.String(), "password_hash")
}

// Concurrent first registrations on an empty uvr, through two API instances
// sharing the users topic: exactly one becomes the admin (201), every other
// is refused with a 4xx that says why, and no second user exists.
func TestFirstAdminRegistrationIsAtomic(t *testing.T) {
	topic := servicetest.Topic("test.api.users")
	var handlers []http.Handler
	for range 2 {
		server, err := api.New(api.Config{EventsTopic: "events", Publisher: noPublisher{}, Auth: authStoreOn(t, topic), Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		handlers = append(handlers, server.Handler())
	}
	const requests = 8
	type answer struct {
		status int
		body   string
	}
	answers := make(chan answer, requests)
	start := make(chan struct{})
	for i := range requests {
		go func() {
			<-start
			req := httptest.NewRequest("POST", "/api/auth/register",
				strings.NewReader(fmt.Sprintf(`{"email":"first%d@example.com","password":"long enough"}`, i)))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			handlers[i%2].ServeHTTP(rec, req)
			answers <- answer{rec.Code, rec.Body.String()}
		}()
	}
	close(start)
	created := 0
	for range requests {
		a := <-answers
		switch a.status {
		case http.StatusCreated:
			created++
			assert.Contains(t, a.body, `"role":"admin"`)
		case http.StatusConflict:
			assert.Contains(t, a.body, "the first admin has already been registered")
		case http.StatusUnauthorized: // arrived once the admin existed: registering needs an admin
			assert.Contains(t, a.body, "not authenticated")
		default:
			t.Errorf("unexpected answer %d %s", a.status, a.body)
		}
	}
	assert.Equal(t, 1, created, "exactly one first admin")
	users, err := authStoreOn(t, topic).ListUsers(context.Background())
	require.NoError(t, err)
	assert.Len(t, users, 1)
}
