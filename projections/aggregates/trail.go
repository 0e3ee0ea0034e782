package aggregates

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/uvrhq/uvr/projections/chstore"
	"github.com/uvrhq/uvr/projections/rawevents"
)

// TableByDayTrails holds, per event identity and by-day kind, the days and
// rev of every version the writer wrote (or tried to write) by-day rows for
// (migration 0009). See current.
//
// Only a version's own days are recorded, not its tombstones: a trail names
// where a live row may be. And a trail older than the raw tables' current
// version is ignored: that version's flush, which came after it (flushes are
// serial, and an older version arriving later is skipped), tombstoned its
// days already. So a correction tombstones what the raw tables and the
// unconfirmed attempts name, not every day of the event's history.
const TableByDayTrails = "by_day_trails"

type trailKey struct {
	kind Kind
	id   identity
}

// trailRow is one row of by_day_trails: a run of consecutive days.
type trailRow struct {
	key      trailKey
	from, to rawevents.Date
	rev      uint64
}

// lookupTrails reads the trails of ids, every kind, one current per row.
func (w *Writer) lookupTrails(ctx context.Context, ids []identity) (map[trailKey][]current, error) {
	out := map[trailKey][]current{}
	for _, chunk := range chunkIdentities(ids, maxLookupBytes) {
		_, args := currentSQL(TableByDayTrails, chunk) // the same bound set
		sql := `SELECT source, id, kind, from_day, to_day, rev
FROM ` + TableByDayTrails + ` FINAL
WHERE (source, id) IN ?`
		err := chstore.QueryRows(ctx, w.conn, sql, args, func(scan func(...any) error) error {
			var (
				k        trailKey
				kind     string
				from, to time.Time
				rev      uint64
			)
			if err := scan(&k.id.source, &k.id.id, &kind, &from, &to, &rev); err != nil {
				return err
			}
			k.kind = Kind(kind)
			var days []rawevents.Date
			for d := rawevents.DateOf(from); !d.After(rawevents.DateOf(to)); d = d.AddDays(1) {
				days = append(days, d)
			}
			out[k] = append(out[k], current{rev: rev, days: days})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("look up the by-day trails of %d identities: %w", len(chunk), err)
		}
	}
	return out, nil
}

// mergeTrails folds the trails of kind into cur (as read from the raw tables,
// which lack a version whose raw insert never happened), but for those older
// than the raw current version.
func mergeTrails(kind Kind, trails map[trailKey][]current, cur map[identity]current) {
	for k, ts := range trails {
		if k.kind != kind {
			continue
		}
		raw := cur[k.id] // zero when the raw tables lack the identity
		for _, t := range ts {
			if t.rev >= raw.rev {
				cur[k.id] = union(cur[k.id], t)
			}
		}
	}
}

func union(a, b current) current {
	days := slices.Clone(a.days)
	for _, d := range b.days {
		if !slices.Contains(days, d) {
			days = append(days, d)
		}
	}
	return current{rev: max(a.rev, b.rev), days: days}
}

// trailsOf returns the trail rows of planned by-day rows: per version, the
// runs of its own days (tombstones left out) at its rev.
func trailsOf[R any](kind Kind, planned []R, of func(*R) *byDayRow) []trailRow {
	type version struct {
		id  identity
		rev uint64
	}
	days := map[version][]rawevents.Date{}
	var order []version
	for i := range planned {
		r := of(&planned[i])
		if r.tomb {
			continue
		}
		v := version{identity{r.row.Event.Source, r.row.Event.ID}, r.rev}
		if _, ok := days[v]; !ok {
			order = append(order, v)
		}
		days[v] = append(days[v], r.day)
	}
	var out []trailRow
	for _, v := range order {
		for _, s := range spansOf(days[v]) {
			out = append(out, trailRow{key: trailKey{kind, v.id}, from: s[0], to: s[1], rev: v.rev})
		}
	}
	return out
}

// spansOf returns the runs of consecutive days of days (any order).
func spansOf(days []rawevents.Date) [][2]rawevents.Date {
	sorted := slices.Clone(days)
	slices.SortFunc(sorted, func(a, b rawevents.Date) int { return a.Midnight().Compare(b.Midnight()) })
	var out [][2]rawevents.Date
	for _, d := range sorted {
		if n := len(out); n > 0 && !d.After(out[n-1][1].AddDays(1)) {
			if d.After(out[n-1][1]) {
				out[n-1][1] = d
			}
			continue
		}
		out = append(out, [2]rawevents.Date{d, d})
	}
	return out
}

func (w *Writer) insertTrails(ctx context.Context, rows []trailRow) error {
	if len(rows) == 0 {
		return nil
	}
	n := len(rows)
	var (
		sources, ids, kinds = make([]string, n), make([]string, n), make([]string, n)
		from, to            = make([]time.Time, n), make([]time.Time, n)
		revs                = make([]uint64, n)
	)
	for i, r := range rows {
		sources[i], ids[i], kinds[i] = r.key.id.source, r.key.id.id, string(r.key.kind)
		from[i], to[i], revs[i] = r.from.Midnight(), r.to.Midnight(), r.rev
	}
	if err := chstore.InsertColumns(ctx, w.conn, TableByDayTrails,
		[]string{"source", "id", "kind", "from_day", "to_day", "rev"},
		[]any{sources, ids, kinds, from, to, revs}); err != nil {
		return fmt.Errorf("insert %d by-day trails: %w", n, err)
	}
	return nil
}

// identitiesOf returns the distinct identities of batch, sorted.
func identitiesOf(batch []*rawevents.Row) []identity {
	ids := make([]identity, 0, len(batch))
	for _, r := range batch {
		ids = append(ids, identity{r.Event.Source, r.Event.ID})
	}
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.id, b.id))
	})
	return slices.Compact(ids)
}
