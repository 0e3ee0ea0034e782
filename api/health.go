package api

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

type healthBody struct {
	Status    string            `json:"status"`
	Version   string            `json:"version"`
	Timestamp time.Time         `json:"timestamp"`
	Checks    map[string]string `json:"checks,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	// Whether an OpenAI and a Stripe service are configured: the fields the
	// original product's clients read.
	OpenAIConfigured bool `json:"openai_configured"`
	StripeConfigured bool `json:"stripe_configured"`
}

// health checks every dependency concurrently, each within HealthTimeout, and
// answers 503 naming the failing ones.
func (s *Server) health(c *gin.Context) {
	results := make([]error, len(s.cfg.Health))
	var wg sync.WaitGroup
	for i, h := range s.cfg.Health {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.HealthTimeout)
			defer cancel()
			results[i] = h.Check(ctx)
		}()
	}
	var configured map[string]bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.cfg.HealthTimeout)
		defer cancel()
		configured = s.configuredTypes(ctx)
	}()
	wg.Wait()

	body := healthBody{Status: "ok", Version: s.cfg.Version, Timestamp: time.Now().UTC(), Checks: map[string]string{},
		OpenAIConfigured: configured["openai"], StripeConfigured: configured["stripe"]}
	var failing []string
	for i, h := range s.cfg.Health {
		if results[i] != nil {
			failing = append(failing, h.Name)
			body.Checks[h.Name] = "down"
			s.logger.Warn("health check failed", "dependency", h.Name, "error", results[i].Error())
			continue
		}
		body.Checks[h.Name] = "ok"
	}
	if len(failing) > 0 {
		body.Status = "unavailable"
		body.Detail = strings.Join(failing, ", ") + " unreachable"
		c.JSON(http.StatusServiceUnavailable, body)
		return
	}
	c.JSON(http.StatusOK, body)
}
