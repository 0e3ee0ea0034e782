package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/pipeline/event"
	"github.com/uvrhq/uvr/projections/pricing"
)

// RateCards is the effective rate card (projections/pricing.Store): the
// default card, the card files and the user's override layer, shared by
// every instance through Kafka. Cards syncs with the shared log first, so a
// change made on any instance before the call is listed. SetOverride
// replaces the override layer with a card file (YAML or JSON): an invalid
// file is a *pricing.ValidationError and changes nothing; otherwise the new
// layer is durable when it returns, with the days it re-costs marked for a
// recompute. Safe for concurrent use.
type RateCards interface {
	Cards(ctx context.Context) ([]pricing.LayeredCard, error)
	SetOverride(ctx context.Context, data []byte) (pricing.Change, error)
}

var _ RateCards = (*pricing.Store)(nil)

// maxRateCardBody bounds a PUT /api/rate-cards body: a card file of every
// model of every provider is a few tens of kilobytes.
const maxRateCardBody = 1 << 20

func (s *Server) registerRateCards(api *gin.RouterGroup) {
	g := api.Group("", s.requireRateCards)
	g.GET("/rate-cards", s.listRateCards)
	g.PUT("/rate-cards", s.putRateCards)
}

// requireRateCards answers 503 when this server has no rate card store.
func (s *Server) requireRateCards(c *gin.Context) {
	if s.cfg.RateCards == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "rate cards are not enabled on this server"})
		return
	}
	c.Next()
}

type rateCardModel struct {
	Model   string            `json:"model"`
	Aliases []string          `json:"aliases"`
	Prices  map[string]Number `json:"prices"` // per one unit, in the card's currency
}

type rateCardBody struct {
	Layer         string          `json:"layer"` // default, file or override (lowest precedence first)
	File          string          `json:"file"`
	Provider      string          `json:"provider"`
	Version       string          `json:"version"`
	EffectiveFrom string          `json:"effective_from"`
	EffectiveTo   *string         `json:"effective_to"` // exclusive; null when open-ended
	Source        string          `json:"source"`
	AsOf          *string         `json:"as_of"`
	Currency      string          `json:"currency"`
	Models        []rateCardModel `json:"models"`
}

type rateCardsResponse struct {
	Cards []rateCardBody `json:"cards"`
}

type recostRange struct {
	Provider string  `json:"provider"`
	Model    string  `json:"model"`
	Unit     string  `json:"unit"`
	From     string  `json:"from"`
	To       *string `json:"to"` // exclusive; null when open-ended
}

type putRateCardsResponse struct {
	// Recost lists the priced items and day ranges whose price changed.
	Recost []recostRange `json:"recost"`
	// DaysMarked counts the days of usage marked for a recompute.
	DaysMarked int `json:"days_marked"`
}

func optDate(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.Format(time.DateOnly)
	return &s
}

func (s *Server) listRateCards(c *gin.Context) {
	cards, err := s.cfg.RateCards.Cards(c.Request.Context())
	if err != nil {
		s.writeError(c, unavailable("could not read the rate cards", err))
		return
	}
	out := rateCardsResponse{Cards: make([]rateCardBody, 0, len(cards))}
	for _, lc := range cards {
		b := rateCardBody{
			Layer: lc.Layer, File: lc.File, Provider: lc.Provider, Version: lc.Version,
			EffectiveFrom: lc.EffectiveFrom.Format(time.DateOnly), EffectiveTo: optDate(lc.EffectiveTo),
			Source: lc.Source, AsOf: optDate(lc.AsOf), Currency: lc.Currency,
			Models: make([]rateCardModel, 0, len(lc.Models)),
		}
		for _, m := range lc.Models {
			prices := make(map[string]Number, len(m.Prices))
			for u, p := range m.Prices {
				prices[u] = num(p)
			}
			aliases := m.Aliases
			if aliases == nil {
				aliases = []string{}
			}
			b.Models = append(b.Models, rateCardModel{Model: m.Name, Aliases: aliases, Prices: prices})
		}
		out.Cards = append(out.Cards, b)
	}
	c.JSON(http.StatusOK, out)
}

// putRateCards replaces the override layer. The body is a card file, JSON or
// YAML (the same format as --rate-cards files; YAML includes JSON).
func (s *Server) putRateCards(c *gin.Context) {
	ct := c.ContentType()
	if ct != "" && ct != "application/json" && !strings.Contains(ct, "yaml") && ct != "text/plain" {
		s.writeError(c, &Error{Kind: KindUnsupported, Detail: fmt.Sprintf("content type %q: send the card file as application/json or application/yaml", ct)})
		return
	}
	body, err := s.readBody(c, maxRateCardBody)
	if err != nil {
		s.writeError(c, err)
		return
	}
	change, err := s.cfg.RateCards.SetOverride(c.Request.Context(), body)
	var verr *pricing.ValidationError
	switch {
	case errors.As(err, &verr):
		problems := make([]event.Problem, len(verr.Problems))
		for i, p := range verr.Problems {
			problems[i] = event.Problem{Index: -1, Field: cardField(p), Reason: p.Reason}
		}
		s.writeError(c, &Error{Kind: KindInvalid, Detail: verr.Error(), Problems: problems})
		return
	case err != nil:
		s.writeError(c, unavailable("could not store the rate cards", err))
		return
	}
	out := putRateCardsResponse{Recost: make([]recostRange, 0, len(change.Ranges)), DaysMarked: change.DaysMarked}
	for _, r := range change.Ranges {
		out.Recost = append(out.Recost, recostRange{Provider: r.Key.Provider, Model: r.Key.Model, Unit: r.Key.Unit,
			From: r.From.Format(time.DateOnly), To: optDate(r.To)})
	}
	c.JSON(http.StatusOK, out)
}

// cardField names where a problem is: the entry (e.g. "cards[0] (openai
// 2025-06-10)") and the field within it.
func cardField(p pricing.Problem) string {
	switch {
	case p.Entry == "":
		return p.Field
	case p.Field == "":
		return p.Entry
	default:
		return p.Entry + ": " + p.Field
	}
}
