package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/projections/insights"
)

// InsightFlags reads and changes the insight flags (projections/insights:
// chinsights.Service). Safe for concurrent use.
type InsightFlags interface {
	// List returns every stored flag.
	List(ctx context.Context) ([]insights.Flag, error)
	// Acknowledge and Resolve change flag id; found is false for an
	// unknown id. Acknowledging a resolved flag gives insights.ErrResolved.
	Acknowledge(ctx context.Context, id string) (f insights.Flag, found bool, err error)
	Resolve(ctx context.Context, id string) (f insights.Flag, found bool, err error)
}

// InsightRunner evaluates the insight rules now (POST /api/insights/run). Runs
// do not overlap; an error means nothing changed or the run is retried by
// the next one.
type InsightRunner interface {
	Run(ctx context.Context) (insights.RunResult, error)
}

// registerInsights adds the insight routes; they answer 503 when this server
// has no insights configured.
func (s *Server) registerInsights(api *gin.RouterGroup) {
	g := api.Group("", s.requireInsights)
	g.GET("/insights", s.listInsights)
	g.POST("/insights/run", s.runInsights)
	g.POST("/insights/:id/acknowledge", s.acknowledgeInsight)
	g.POST("/insights/:id/resolve", s.resolveInsight)
}

func (s *Server) requireInsights(c *gin.Context) {
	if s.cfg.Insights == nil || s.cfg.InsightRunner == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "insights are not enabled on this server"})
		return
	}
	c.Next()
}

type insightCustomer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type insightMetric struct {
	Name  string `json:"name"`  // an evidence key
	Value string `json:"value"` // its decimal value
}

// insightBody is one flag in the shape of the original product's insights
// (type is the severity, category the kind) with the flag's details.
type insightBody struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Category    string            `json:"category"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Metric      insightMetric     `json:"metric"`
	Status      string            `json:"status"`
	Customer    *insightCustomer  `json:"customer,omitempty"`
	Feature     string            `json:"feature,omitempty"`
	Window      insights.Window   `json:"window"`
	Evidence    map[string]string `json:"evidence"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
}

type insightsBody struct {
	Insights []insightBody `json:"insights"`
}

type insightResponse struct {
	Insight insightBody `json:"insight"`
}

// headline is the evidence number that sums a flag up, per kind.
var headline = map[insights.Kind][]string{
	insights.KindUnprofitableCustomer: {"loss"},
	insights.KindUnprofitableFeature:  {"loss"},
	insights.KindMarginErosion:        {"change_points"},
	insights.KindUsageAnomaly:         {"change_percent"},
	insights.KindUpsellOpportunity:    {"quota_percent", "usage"},
	insights.KindChurnRisk:            {"change_percent"},
}

func toInsightBody(f insights.Flag) insightBody {
	b := insightBody{
		ID: f.ID, Type: string(f.Severity), Category: string(f.Kind), Title: f.Title, Description: f.Description,
		Status: string(f.Status), Feature: f.Feature, Window: f.Window, Evidence: f.Evidence,
		FirstSeen: f.FirstSeen, LastSeen: f.LastSeen,
	}
	if b.Evidence == nil {
		b.Evidence = map[string]string{}
	}
	for _, k := range headline[f.Kind] {
		if v, ok := f.Evidence[k]; ok {
			b.Metric = insightMetric{Name: k, Value: v}
			break
		}
	}
	if f.CustomerID != "" {
		name := f.CustomerName
		if name == "" {
			name = f.CustomerID
		}
		b.Customer = &insightCustomer{ID: f.CustomerID, Name: name}
	}
	return b
}

// insightFilter is the query of GET /api/insights; an empty field matches all.
type insightFilter struct {
	status   insights.Status
	severity insights.Severity
	kind     insights.Kind
}

func parseInsightFilter(c *gin.Context) (insightFilter, error) {
	var f insightFilter
	var problems []string
	if v := c.Query("status"); v != "" {
		if f.status = insights.Status(v); !f.status.Valid() {
			problems = append(problems, fmt.Sprintf("unknown status %q (want open, acknowledged or resolved)", v))
		}
	}
	if v := c.Query("severity"); v != "" {
		if f.severity = insights.Severity(v); !f.severity.Valid() {
			problems = append(problems, fmt.Sprintf("unknown severity %q (want info, warning or critical)", v))
		}
	}
	if v := c.Query("kind"); v != "" {
		if f.kind = insights.Kind(v); !f.kind.Valid() {
			names := make([]string, len(insights.Kinds))
			for i, k := range insights.Kinds {
				names[i] = string(k)
			}
			problems = append(problems, fmt.Sprintf("unknown kind %q (want one of %s)", v, strings.Join(names, ", ")))
		}
	}
	if len(problems) > 0 {
		return f, invalid(strings.Join(problems, "; "))
	}
	return f, nil
}

func (f insightFilter) match(fl insights.Flag) bool {
	return (f.status == "" || fl.Status == f.status) &&
		(f.severity == "" || fl.Severity == f.severity) &&
		(f.kind == "" || fl.Kind == f.kind)
}

// listInsights serves GET /api/insights: the flags matching the filters, most
// severe first, then most recently seen, then by id.
func (s *Server) listInsights(c *gin.Context) {
	filter, err := parseInsightFilter(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	flags, err := s.cfg.Insights.List(c.Request.Context())
	if err != nil {
		s.writeError(c, unavailable("insights unavailable", err))
		return
	}
	out := insightsBody{Insights: []insightBody{}}
	flags = slices.DeleteFunc(flags, func(f insights.Flag) bool { return !filter.match(f) })
	slices.SortFunc(flags, func(a, b insights.Flag) int {
		if d := b.Severity.Rank() - a.Severity.Rank(); d != 0 {
			return d
		}
		if d := b.LastSeen.Compare(a.LastSeen); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, f := range flags {
		out.Insights = append(out.Insights, toInsightBody(f))
	}
	c.JSON(http.StatusOK, out)
}

// runInsights serves POST /api/insights/run.
func (s *Server) runInsights(c *gin.Context) {
	res, err := s.cfg.InsightRunner.Run(c.Request.Context())
	if err != nil {
		s.writeError(c, unavailable("insight evaluation failed", err))
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) acknowledgeInsight(c *gin.Context) { s.changeInsight(c, s.cfg.Insights.Acknowledge) }

func (s *Server) resolveInsight(c *gin.Context) { s.changeInsight(c, s.cfg.Insights.Resolve) }

func (s *Server) changeInsight(c *gin.Context, change func(context.Context, string) (insights.Flag, bool, error)) {
	id := c.Param("id")
	f, found, err := change(c.Request.Context(), id)
	switch {
	case errors.Is(err, insights.ErrResolved):
		s.writeError(c, &Error{Kind: KindConflict, Detail: fmt.Sprintf("insight %s is resolved", id), Err: err})
		return
	case err != nil:
		s.writeError(c, unavailable("insights unavailable", err))
		return
	case !found:
		s.writeError(c, &Error{Kind: KindNotFound, Detail: fmt.Sprintf("insight %s not found", id)})
		return
	}
	c.JSON(http.StatusOK, insightResponse{Insight: toInsightBody(f)})
}
