// Package insightstest holds in-memory implementations of the insights
// interfaces, for tests of the insights package and of its users (the API,
// the scheduler), held to the same contracts as the ClickHouse ones
// (StoreContract, DeliveryLogContract).
package insightstest

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/uvrhq/uvr/projections/insights"
)

// Store is an in-memory insights.Store and insights.DeliveryLog. The zero
// value is ready. Safe for concurrent use. Set the Err fields to make the
// next calls fail.
type Store struct {
	mu         sync.Mutex
	flags      map[string]insights.Flag
	deliveries map[[2]string]insights.Severity
	saves      int

	LoadErr, SaveErr, DeliveredErr, MarkErr error
}

var (
	_ insights.Store       = (*Store)(nil)
	_ insights.DeliveryLog = (*Store)(nil)
)

// Load returns every flag, sorted by id.
func (s *Store) Load(context.Context) ([]insights.Flag, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.LoadErr != nil {
		return nil, s.LoadErr
	}
	return s.sorted(), nil
}

// Save keeps each flag whose version is higher than the stored one's.
func (s *Store) Save(_ context.Context, flags []insights.Flag) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.SaveErr != nil {
		return s.SaveErr
	}
	if s.flags == nil {
		s.flags = map[string]insights.Flag{}
	}
	for _, f := range flags {
		if old, ok := s.flags[f.ID]; ok && old.Version >= f.Version {
			continue
		}
		f.Evidence = maps.Clone(f.Evidence)
		s.flags[f.ID] = f
	}
	s.saves++
	return nil
}

// Flags returns every stored flag, sorted by id.
func (s *Store) Flags() []insights.Flag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sorted()
}

// Saves counts the successful Save calls.
func (s *Store) Saves() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}

// Update applies fn to the stored flag id (as the API's acknowledge and
// resolve do) and reports whether it exists.
func (s *Store) Update(id string, fn func(*insights.Flag) error) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flags[id]
	if !ok {
		return false, nil
	}
	if err := fn(&f); err != nil {
		return true, err
	}
	s.flags[id] = f
	return true, nil
}

func (s *Store) sorted() []insights.Flag {
	out := slices.Collect(maps.Values(s.flags))
	for i := range out {
		out[i].Evidence = maps.Clone(out[i].Evidence)
	}
	slices.SortFunc(out, func(a, b insights.Flag) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Delivered implements insights.DeliveryLog.
func (s *Store) Delivered(_ context.Context, channel string, ids []string) (map[string]insights.Severity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.DeliveredErr != nil {
		return nil, s.DeliveredErr
	}
	out := map[string]insights.Severity{}
	for _, id := range ids {
		if sev, ok := s.deliveries[[2]string{channel, id}]; ok {
			out[id] = sev
		}
	}
	return out, nil
}

// MarkDelivered implements insights.DeliveryLog, keeping the highest severity.
func (s *Store) MarkDelivered(_ context.Context, channel, id string, sev insights.Severity, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.MarkErr != nil {
		return s.MarkErr
	}
	if s.deliveries == nil {
		s.deliveries = map[[2]string]insights.Severity{}
	}
	k := [2]string{channel, id}
	if old, ok := s.deliveries[k]; !ok || sev.Rank() > old.Rank() {
		s.deliveries[k] = sev
	}
	return nil
}

// Source is a fixed insights.Source: it returns its series cut to the
// window asked (days outside it removed). Set Err to make it fail.
type Source struct {
	Customers []insights.CustomerSeries
	Features  []insights.FeatureSeries
	Err       error
}

var _ insights.Source = (*Source)(nil)

// CustomerDays returns the customers with days in w, their days cut to w.
func (s *Source) CustomerDays(_ context.Context, w insights.Window) ([]insights.CustomerSeries, error) {
	if s.Err != nil {
		return nil, s.Err
	}
	var out []insights.CustomerSeries
	for _, c := range s.Customers {
		days := slices.DeleteFunc(slices.Clone(c.Days), func(d insights.CustomerDay) bool { return !w.Contains(d.Day) })
		if len(days) > 0 {
			c.Days = days
			out = append(out, c)
		}
	}
	return out, nil
}

// FeatureDays returns the features with days in w, their days cut to w.
func (s *Source) FeatureDays(_ context.Context, w insights.Window) ([]insights.FeatureSeries, error) {
	if s.Err != nil {
		return nil, s.Err
	}
	var out []insights.FeatureSeries
	for _, f := range s.Features {
		days := slices.DeleteFunc(slices.Clone(f.Days), func(d insights.FeatureDay) bool { return !w.Contains(d.Day) })
		if len(days) > 0 {
			f.Days = days
			out = append(out, f)
		}
	}
	return out, nil
}

// Get returns the stored flag id and whether it exists.
func (s *Store) Get(_ context.Context, id string) (insights.Flag, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.flags[id]
	f.Evidence = maps.Clone(f.Evidence)
	return f, ok, nil
}
