package api

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// SessionCookie carries the bearer token for browsers: set by login (and the
// open first registration), accepted wherever the Authorization header is,
// cleared by logout. HttpOnly, so no script (nor an injected one) reads the
// token; SameSite=Lax, so other sites' forms and fetches do not carry it
// (top-level GET navigations still do, which only read).
const SessionCookie = "uvr_session"

// setSession stores token in the session cookie for ttl (the token's own
// lifetime: the cookie never outlives what it carries).
func (s *Server) setSession(c *gin.Context, token string, ttl time.Duration) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/", MaxAge: int(ttl / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.overHTTPS(c.Request),
	})
}

// logout serves POST /api/auth/logout: the session cookie is removed (the
// browser drops it at once). It is public so that a browser whose session
// already expired can still clear it; the token itself stays valid until it
// expires, as tokens are stateless (a client holding it as a bearer keeps it).
func (s *Server) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.overHTTPS(c.Request),
	})
	c.Status(http.StatusNoContent)
}

// sessionOf is the token of the session cookie, "" without one.
func sessionOf(r *http.Request) string {
	ck, err := r.Cookie(SessionCookie)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(ck.Value)
}

// overHTTPS reports whether the client reached us over TLS: the connection's
// own, or X-Forwarded-Proto only when a TLS-terminating proxy in front is
// trusted to set it (TrustForwardedProto); otherwise any client could claim it.
func (s *Server) overHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return s.cfg.TrustForwardedProto && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// ownOrigin is the origin the client addressed this server by.
func (s *Server) ownOrigin(r *http.Request) string {
	scheme := "http"
	if s.overHTTPS(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// checkCSRF guards a state-changing request authenticated by the session
// cookie: a browser sends the cookie on requests other sites start, so the
// request must say where it comes from (Origin, or failing that Referer) and
// that must be an allowed origin or this server's own. A bearer token or API
// key in a header is never sent by a browser on its own, so those requests
// need no such check. The returned reason names what was refused.
func (s *Server) checkCSRF(r *http.Request) (string, bool) {
	origin := r.Header.Get("Origin")
	from := "Origin"
	if origin == "" || origin == "null" {
		ref, err := url.Parse(r.Header.Get("Referer"))
		if err != nil || ref.Scheme == "" || ref.Host == "" {
			return "a request authenticated by the session cookie that changes state must carry an Origin or Referer header (cross-site request protection); send the token as a bearer instead, or call from the browser", false
		}
		origin, from = ref.Scheme+"://"+ref.Host, "Referer"
	}
	if origin == s.ownOrigin(r) || s.origins[origin] {
		return "", true
	}
	return "cross-site request refused: " + from + " " + quote(origin) + " is not an allowed origin for a request authenticated by the session cookie (allow it with --cors-origins)", false
}
