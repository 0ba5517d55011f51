package server

// Cursor pagination shared by every list route.

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/espadmin/espadmin/store"
)

// pageResponse is the one shape of every list: the items of one page and the cursor of the
// next ("" on the last page). The cursor is opaque to clients.
type pageResponse[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// pageQuery is the query of every list route.
type pageQuery struct {
	Limit  int    `query:"limit" doc:"page size, 1 to 500 (default 50)"`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page"`
}

// parsePage reads ?limit= and ?cursor=. A limit outside 1..MaxPageSize or not a number is a
// 422 rather than silently clamped, so a client learns its request was not what it meant.
func parsePage(c echo.Context) (store.ListOptions, error) {
	var opts store.ListOptions
	if raw := c.QueryParam("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > store.MaxPageSize {
			return opts, store.Invalid("limit", fmt.Sprintf("must be an integer from 1 to %d", store.MaxPageSize))
		}
		opts.Limit = n
	}
	opts.Cursor = c.QueryParam("cursor")
	if len(opts.Cursor) > 64 || strings.ContainsFunc(opts.Cursor, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z')
	}) {
		return opts, store.Invalid("cursor", "is not a cursor this server returned")
	}
	return opts, nil
}

// pageOf converts a store page to its wire form.
func pageOf[T, W any](p store.Page[T], convert func(T) W) pageResponse[W] {
	items := make([]W, len(p.Items))
	for i, it := range p.Items {
		items[i] = convert(it)
	}
	return pageResponse[W]{Items: items, NextCursor: p.NextCursor}
}
