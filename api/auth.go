package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/gin-contrib/cors"
	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/api/access"
	"github.com/uvrhq/uvr/pipeline/event"
)

// Auth decides who may call the API and keeps the accounts (api/access.Store
// implements it). Every method is safe for concurrent use; failures are
// *access.Error values whose kind errors.go maps to a status, and whose
// messages never hold a password, hash, token or key.
type Auth interface {
	// Authenticate resolves a bearer token or API key; "" is unauthorized.
	Authenticate(ctx context.Context, credential string) (access.Principal, error)
	// HasUsers reports whether any user exists: until one does, POST
	// /api/auth/register is open, to create the first admin.
	HasUsers(ctx context.Context) (bool, error)
	Register(ctx context.Context, u access.NewUser) (access.User, error)
	// RegisterFirst registers an admin only while no user exists.
	RegisterFirst(ctx context.Context, u access.NewUser) (access.User, error)
	// Login returns the user and a bearer token, or unauthorized without
	// saying whether the email exists.
	Login(ctx context.Context, email, password string) (access.User, string, error)
	User(ctx context.Context, id string) (access.User, error)
	// IssueToken signs a token for a user id, valid for ttl (0: TokenTTL).
	IssueToken(userID string, ttl time.Duration) (string, error)
	CreateAPIKey(ctx context.Context, name string, role access.Role, createdBy string) (access.APIKey, string, error)
	ListAPIKeys(ctx context.Context) ([]access.APIKey, error)
	RevokeAPIKey(ctx context.Context, id string) error
	// ListUsers, UpdateUser and DeleteUser administer users (users.go); a
	// change that would leave no active admin is a conflict.
	ListUsers(ctx context.Context) ([]access.User, error)
	UpdateUser(ctx context.Context, id string, change access.UserChange) (access.User, error)
	DeleteUser(ctx context.Context, id string) error
	// TokenTTL is the lifetime of the tokens Login issues (the session
	// cookie's too).
	TokenTTL() time.Duration
}

// publicRoutes answer without credentials. Everything else under /api needs
// a bearer token, an API key or the session cookie; routes outside /api (/health, /metrics, the
// web dashboard with its login page) are public.
var publicRoutes = map[string]bool{
	"/api/health":       true,
	"/api/auth/login":   true,
	"/api/auth/logout":  true, // session.go: clears the cookie, even an expired one
	"/api/openapi.json": true,
	"/api/docs":         true,
}

// PublicRoute reports whether an /api route is served without credentials.
func PublicRoute(path string) bool { return publicRoutes[path] }

// adminReads are read routes only an admin may call: the lists of API keys
// and users, and the dead letters (a reason may quote a value of an event);
// every other route that needs admin is a write.
var adminReads = map[string]bool{"/api/auth/api-keys": true, "/api/users": true, "/api/deadletters": true}

// AdminRead reports whether a read route needs the admin role.
func AdminRead(path string) bool { return adminReads[path] }

// readPosts are POST routes that write nothing: the request body is a query
// too large or too structured for a query string (a what-if scenario), so any
// role may call them.
var readPosts = map[string]bool{"/api/simulate": true}

// ingestRoutes are all an ingest API key may call (besides the public
// routes, health among them): sending events.
var ingestRoutes = map[string]bool{http.MethodPost + " /api/events": true}

const principalKey = "uvr.principal"

func (s *Server) registerAuth(api *gin.RouterGroup) {
	api.POST("/auth/register", s.register)
	api.POST("/auth/login", s.login)
	api.POST("/auth/logout", s.logout)
	api.GET("/auth/me", s.me)
	api.POST("/auth/api-keys", s.createAPIKey)
	api.GET("/auth/api-keys", s.listAPIKeys)
	api.DELETE("/auth/api-keys/:id", s.revokeAPIKey)
	s.registerUsers(api)
}

// corsMiddleware answers preflights and sets the CORS headers for the allowed
// origins (none but the server's own unless configured). Browsers send the
// token in the Authorization header or the session cookie, so that header and
// credentials are allowed; a request from any other origin gets a 403 before
// it reaches a handler.
func corsMiddleware(origins map[string]bool) gin.HandlerFunc {
	return cors.New(cors.Config{
		AllowOriginFunc:  func(origin string) bool { return origins[origin] },
		AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions},
		AllowHeaders:     []string{"Authorization", "Content-Type", "X-API-Key", "Idempotency-Key"},
		AllowCredentials: true,
		MaxAge:           12 * time.Hour,
	})
}

// authenticate runs on every /api route: public routes pass; the others need
// credentials (401) from a header or the session cookie, a state-changing
// request authenticated by the cookie must come from an allowed origin
// (session.go, 403), write methods need a role that may write (403), and an
// ingest key may only send events (403).
func (s *Server) authenticate(c *gin.Context) {
	route := c.FullPath()
	if publicRoutes[route] {
		c.Next()
		return
	}
	credential, byCookie := credentialOf(c.Request), false
	if credential == "" && c.Request.Header.Get("Authorization") == "" {
		credential = sessionOf(c.Request)
		byCookie = credential != ""
	}
	if route == "/api/auth/register" && credential == "" {
		// Until the first user exists anyone may register it (as admin).
		has, err := s.cfg.Auth.HasUsers(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if !has {
			c.Next()
			return
		}
	}
	p, err := s.cfg.Auth.Authenticate(c, credential)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if byCookie && writeMethod(c.Request.Method) {
		if reason, ok := s.checkCSRF(c.Request); !ok {
			s.writeError(c, &Error{Kind: KindForbidden, Detail: reason})
			return
		}
	}
	switch {
	case p.Role == access.RoleIngest:
		if !ingestRoutes[c.Request.Method+" "+route] {
			s.writeError(c, &Error{Kind: KindForbidden, Detail: "an ingest API key may only send events (POST /api/events); " +
				c.Request.Method + " " + route + " needs a key or user of another role"})
			return
		}
	case ((writeMethod(c.Request.Method) && !readPosts[route]) || adminReads[route]) && !p.Role.CanWrite():
		s.writeError(c, &Error{Kind: KindForbidden, Detail: "the " + string(p.Role) + " role may not do this; it needs admin"})
		return
	}
	c.Set(principalKey, p)
	c.Next()
}

func writeMethod(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch || m == http.MethodDelete
}

// credentialOf reads "Authorization: Bearer <token or key>" or "X-API-Key".
func credentialOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, value, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(value)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("X-API-Key"))
}

func principalOf(c *gin.Context) (access.Principal, bool) {
	v, ok := c.Get(principalKey)
	if !ok {
		return access.Principal{}, false
	}
	p, ok := v.(access.Principal)
	return p, ok
}

type userBody struct {
	ID       string `json:"id"`
	Email    string `json:"email"`
	Username string `json:"username"`
	FullName string `json:"full_name"`
	IsActive bool   `json:"is_active"`
	Role     string `json:"role"`
}

func userOf(u access.User) userBody {
	return userBody{ID: u.ID, Email: u.Email, Username: u.Email, FullName: u.FullName, IsActive: u.Active, Role: string(u.Role)}
}

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	FullName string `json:"full_name"`
	Role     string `json:"role"`
}

// register creates a user and answers like login (a token for the new user),
// which is what the original product's clients read. The first user,
// registered while none exists, is an admin whatever the request says, and
// is logged in (session cookie) as login would; afterwards only an admin gets
// here (authenticate), the role defaults to viewer, and the admin's own
// session is left as it is.
func (s *Server) register(c *gin.Context) {
	var req registerRequest
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	nu := access.NewUser{Email: req.Email, Password: req.Password, FullName: req.FullName, Role: access.Role(req.Role)}
	if nu.Role == "" {
		nu.Role = access.RoleViewer
	}
	register := s.cfg.Auth.Register
	_, authenticated := principalOf(c)
	if !authenticated {
		register = s.cfg.Auth.RegisterFirst // checked again under the store's lock
	}
	u, err := register(c, nu)
	if err != nil {
		s.writeError(c, err)
		return
	}
	token, err := s.cfg.Auth.IssueToken(u.ID, 0)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if !authenticated {
		s.setSession(c, token, s.cfg.Auth.TokenTTL())
	}
	c.JSON(http.StatusCreated, loginResponse{AccessToken: token, TokenType: "bearer", User: userOf(u)})
}

type loginResponse struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	User        userBody `json:"user"`
}

// login takes the OAuth2 password form (username = email, password), as the
// original product's clients send it, or the same fields as JSON. The token
// is in the answer (for bearer clients) and in the session cookie (browsers).
func (s *Server) login(c *gin.Context) {
	var username, password string
	if strings.HasPrefix(c.ContentType(), "application/json") {
		var req struct {
			Username string `json:"username"`
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		if err := s.readJSON(c, &req); err != nil {
			s.writeError(c, err)
			return
		}
		username, password = req.Username, req.Password
		if username == "" {
			username = req.Email
		}
	} else {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, 64<<10)
		username, password = c.PostForm("username"), c.PostForm("password")
	}
	switch {
	case strings.TrimSpace(username) == "":
		s.writeError(c, fieldError("username", "username (the email) is required"))
		return
	case password == "":
		s.writeError(c, fieldError("password", "password is required"))
		return
	}
	u, token, err := s.logins.login(c, username, password) // loginguard.go: limits, then the check
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.setSession(c, token, s.cfg.Auth.TokenTTL())
	c.JSON(http.StatusOK, loginResponse{AccessToken: token, TokenType: "bearer", User: userOf(u)})
}

// me is the caller: the user behind a token, or for an API key a stand-in
// with the key's id and role.
func (s *Server) me(c *gin.Context) {
	p, _ := principalOf(c)
	if p.UserID == "" {
		id := p.APIKeyID
		if id == "" {
			id = "system"
		}
		c.JSON(http.StatusOK, userBody{ID: id, IsActive: true, Role: string(p.Role)})
		return
	}
	u, err := s.cfg.Auth.User(c, p.UserID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, userOf(u))
}

type apiKeyBody struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Last4     string    `json:"last4"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	Key       string    `json:"key,omitempty"` // only in the answer to its creation
}

func apiKeyOf(k access.APIKey) apiKeyBody {
	return apiKeyBody{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Last4: k.Last4, Role: string(k.Role), CreatedAt: k.CreatedAt}
}

// createAPIKey makes a key; the answer is the only time the key is shown.
func (s *Server) createAPIKey(c *gin.Context) {
	var req struct {
		Name string `json:"name"`
		Role string `json:"role"`
	}
	if err := s.readJSON(c, &req); err != nil {
		s.writeError(c, err)
		return
	}
	role := access.Role(req.Role)
	if role == "" {
		role = access.RoleViewer
	}
	p, _ := principalOf(c)
	k, key, err := s.cfg.Auth.CreateAPIKey(c, req.Name, role, p.UserID)
	if err != nil {
		s.writeError(c, err)
		return
	}
	body := apiKeyOf(k)
	body.Key = key
	c.JSON(http.StatusCreated, body)
}

func (s *Server) listAPIKeys(c *gin.Context) {
	keys, err := s.cfg.Auth.ListAPIKeys(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	out := make([]apiKeyBody, 0, len(keys))
	for _, k := range keys {
		out = append(out, apiKeyOf(k))
	}
	c.JSON(http.StatusOK, gin.H{"api_keys": out})
}

func (s *Server) revokeAPIKey(c *gin.Context) {
	if err := s.cfg.Auth.RevokeAPIKey(c, c.Param("id")); err != nil {
		s.writeError(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func fieldError(field, reason string) error {
	return &Error{Kind: KindInvalid, Detail: reason, Problems: []event.Problem{{Index: -1, Field: field, Reason: reason}}}
}

// accessError turns an *access.Error into the API's error.
func accessError(err error) (*Error, bool) {
	var ae *access.Error
	if !errors.As(err, &ae) {
		return nil, false
	}
	out := &Error{Kind: accessKinds[ae.Kind], Detail: ae.Message, Err: err}
	if out.Kind == "" {
		out.Kind = KindInternal
	}
	if ae.Field != "" {
		out.Problems = []event.Problem{{Index: -1, Field: ae.Field, Reason: ae.Message}}
	}
	return out, true
}
