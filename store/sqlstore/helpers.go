package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/espadmin/espadmin/store"
)

// ts normalises a time for writing: UTC, milliseconds (zero stays zero and is stored as NULL
// by the nullzero columns).
func ts(t time.Time) time.Time { return store.Timestamp(t) }

// tsPtr normalises an optional time for writing.
func tsPtr(t *time.Time) *time.Time { return store.TimestampPtr(t) }

// utc returns a time read from the database in UTC: drivers hand back the session's or the
// process's zone, and callers compare Location() too.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// utcPtr is utc for optional times.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

// nowOr returns t normalised, or the current time when t is zero.
func nowOr(t time.Time) time.Time {
	if t.IsZero() {
		return store.Now()
	}
	return ts(t)
}

// toJSON encodes a slice column. nil encodes as "null" and an empty slice as "[]", so both
// round-trip as given.
func toJSON[T any](v []T) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("sqlstore: encode %T: %v", v, err)) // slices of strings and ints always encode
	}
	return string(b)
}

// fromJSON decodes a slice column written by toJSON.
func fromJSON[T any](s string) ([]T, error) {
	if s == "" || s == "null" {
		return nil, nil
	}
	var v []T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, fmt.Errorf("decode JSON column: %w", err)
	}
	return v, nil
}

// paginate adds the cursor condition, the order and the limit (one row more than the page, for
// store.MakePage) on column col. The cursor is the value of col in the last row of the
// previous page.
func paginate(q *bun.SelectQuery, col string, cursor any, hasCursor bool, opts store.ListOptions) *bun.SelectQuery {
	if hasCursor {
		if opts.Desc {
			q = q.Where("? < ?", bun.Ident(col), cursor)
		} else {
			q = q.Where("? > ?", bun.Ident(col), cursor)
		}
	}
	if opts.Desc {
		q = q.OrderExpr("? DESC", bun.Ident(col))
	} else {
		q = q.OrderExpr("? ASC", bun.Ident(col))
	}
	return q.Limit(int64(opts.PageSize()) + 1)
}

// pageByID is paginate on the id column with a string cursor.
func pageByID(q *bun.SelectQuery, opts store.ListOptions) *bun.SelectQuery {
	return paginate(q, "id", opts.Cursor, opts.Cursor != "", opts)
}

// int64Cursor parses a numeric cursor (config versions).
func int64Cursor(cursor string) (int64, bool, error) {
	if cursor == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("invalid cursor %q", cursor)
	}
	return v, true, nil
}

// likeEscape escapes LIKE wildcards with '!' (used with ESCAPE '!', which all three databases
// accept; a backslash would itself need escaping in MySQL string literals).
func likeEscape(s string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(s)
}

// exists reports whether table has a row with tenant_id and id, to tell a missing row from a
// failed condition after an UPDATE that matched nothing.
func exists(ctx context.Context, db bun.IDB, table, tenantID, id string) (bool, error) {
	return db.NewSelect().Table(table).
		Where("tenant_id = ?", tenantID).
		Where("id = ?", id).
		Exists(ctx)
}

// notFoundOr returns store.ErrNotFound when the row is missing and otherErr when it exists.
func notFoundOr(ctx context.Context, db bun.IDB, table, tenantID, id string, otherErr error) error {
	ok, err := exists(ctx, db, table, tenantID, id)
	switch {
	case err != nil:
		return err
	case !ok:
		return store.ErrNotFound
	}
	return otherErr
}
