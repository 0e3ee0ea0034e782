package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/uvrhq/uvr/projections/aggregates"
	"github.com/uvrhq/uvr/projections/revenue"
)

// MRRReader computes monthly recurring revenue (aggregates.Analytics.MRR).
// Errors as AnalyticsReader's. Safe for concurrent use.
type MRRReader interface {
	MRR(ctx context.Context, r aggregates.Range, customerID string) (aggregates.MRR, error)
}

var _ MRRReader = (*aggregates.Analytics)(nil)

type mrrMonthBody struct {
	Month                string `json:"month"` // YYYY-MM
	MRR                  Number `json:"mrr"`
	Customers            int    `json:"customers"`
	New                  Number `json:"new"`
	Expansion            Number `json:"expansion"`
	Contraction          Number `json:"contraction"`
	Churn                Number `json:"churn"`
	Reactivation         Number `json:"reactivation"`
	NewCustomers         int    `json:"new_customers"`
	ExpansionCustomers   int    `json:"expansion_customers"`
	ContractionCustomers int    `json:"contraction_customers"`
	ChurnedCustomers     int    `json:"churned_customers"`
	ReactivatedCustomers int    `json:"reactivated_customers"`
}

type mrrCustomerBody struct {
	CustomerID string `json:"customer_id"`
	Month      string `json:"month"`
	MRR        Number `json:"mrr"`
}

type mrrBody struct {
	Months    []mrrMonthBody    `json:"months"`
	Customers []mrrCustomerBody `json:"customers"`
	// CustomersTotal is the customer rows of every page (limit, offset).
	CustomersTotal int       `json:"customers_total"`
	DateRange      dateRange `json:"date_range"`
	Currency       string    `json:"currency"`
	TZ             string    `json:"tz"`
}

// mrr serves GET /api/mrr?start_date=&end_date=&currency=&tz=&customer_id=&format=&limit=&offset=:
// per month of the range the MRR at its end with its movements, and each
// customer's MRR at each month end. MRR is a property of subscription lines,
// not of a basis: basis is accepted (as on every money route) and ignored.
// CSV lists the months.
func (s *Server) mrr(c *gin.Context) {
	if s.cfg.Analytics.MRR == nil {
		s.writeError(c, &Error{Kind: KindUnavailable, Detail: "MRR is not enabled on this server"})
		return
	}
	r, err := s.analyticsRange(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	format, err := formatParam(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	limit, offset, err := pageParams(c, maxPageRows, maxPageRows)
	if err != nil {
		s.writeError(c, err)
		return
	}
	m, err := s.cfg.Analytics.MRR.MRR(c.Request.Context(), r, c.Query("customer_id"))
	if err != nil {
		s.writeError(c, s.analyticsError(err))
		return
	}
	// The months are bounded by the range; the customer × month rows are paged.
	custs := page(m.Customers, limit, offset)
	body := mrrBody{Months: make([]mrrMonthBody, len(m.Months)), Customers: make([]mrrCustomerBody, len(custs)), CustomersTotal: len(m.Customers)}
	body.DateRange, body.Currency, _, body.TZ = echo(c, r)
	for i, mm := range m.Months {
		body.Months[i] = monthBody(mm)
	}
	for i, cm := range custs {
		body.Customers[i] = mrrCustomerBody{CustomerID: cm.Customer, Month: cm.Month.String(), MRR: num(cm.MRR)}
	}
	if format == "csv" {
		records := make([][]string, len(body.Months))
		for i, b := range body.Months {
			records[i] = []string{b.Month, b.MRR.String(), strconv.Itoa(b.Customers), b.New.String(), b.Expansion.String(),
				b.Contraction.String(), b.Churn.String(), b.Reactivation.String()}
		}
		s.writeCSV(c, "mrr.csv", []string{"month", "mrr", "customers", "new", "expansion", "contraction", "churn", "reactivation"}, records)
		return
	}
	c.JSON(http.StatusOK, body)
}

func monthBody(mm revenue.MonthMovements) mrrMonthBody {
	return mrrMonthBody{
		Month: mm.Month.String(), MRR: num(mm.MRR), Customers: mm.Customers,
		New: num(mm.New), Expansion: num(mm.Expansion), Contraction: num(mm.Contraction),
		Churn: num(mm.Churn), Reactivation: num(mm.Reactivation),
		NewCustomers: mm.NewCustomers, ExpansionCustomers: mm.ExpansionCustomers,
		ContractionCustomers: mm.ContractionCustomers, ChurnedCustomers: mm.ChurnedCustomers,
		ReactivatedCustomers: mm.ReactivatedCustomers,
	}
}
