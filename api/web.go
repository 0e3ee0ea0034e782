package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// Cache policies of the dashboard's files. Vite names every file under
// assets/ by its content hash, so a cached copy can never be stale; anything
// else (index.html above all, which names the current hashes) is revalidated
// on each load so that a new release shows at once.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
	webIndex        = "index.html"
	webHashedAssets = "assets/"
)

// serveWeb answers a GET or HEAD that no route matched with the dashboard
// (Config.Web): the file at the path when there is one, else index.html, so
// that the single-page app's own routes (/insights, /customers/c1…) load it
// too. It reports false, leaving the JSON 404 to the caller, for the API's
// own namespaces (/api, /metrics, /health), other methods, a server without
// Web, and a missing hashed asset (an index.html in its place would only
// fail to parse as a script).
func (s *Server) serveWeb(c *gin.Context) bool {
	r := c.Request
	if s.cfg.Web == nil || (r.Method != http.MethodGet && r.Method != http.MethodHead) || apiNamespace(r.URL.Path) {
		return false
	}
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" {
		name = webIndex
	}
	body, err := fs.ReadFile(s.cfg.Web, name)
	if err != nil && strings.HasPrefix(name, webHashedAssets) {
		return false
	}
	if err != nil { // a directory or no such file: the app routes it
		name = webIndex
		if body, err = fs.ReadFile(s.cfg.Web, name); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				s.writeError(c, err)
				return true
			}
			return false
		}
	}
	if strings.HasPrefix(name, webHashedAssets) {
		c.Header("Cache-Control", cacheImmutable)
	} else {
		c.Header("Cache-Control", cacheRevalidate)
		sum := sha256.Sum256(body)
		c.Header("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	}
	// ServeContent sets the type from the extension, answers HEAD, ranges
	// and If-None-Match against the ETag above.
	http.ServeContent(c.Writer, r, name, time.Time{}, bytes.NewReader(body))
	return true
}

// apiNamespace reports whether p belongs to the API rather than the app.
func apiNamespace(p string) bool {
	for _, prefix := range []string{"/api", "/metrics", "/health"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return true
		}
	}
	return false
}
