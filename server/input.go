package server

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// Text that reaches the store is valid UTF-8 without NUL: PostgreSQL refuses NUL in text
// columns and invalid UTF-8 in any string, and Go's encoding/json would silently replace
// invalid bytes with U+FFFD, changing what the client sent. Both are refused where input
// enters the server: request bodies (decodeJSON), path parameters and query values
// (validTextMiddleware) and the text fields of a release upload.

// msgNUL and msgUTF8 are the field messages of refused text.
const (
	msgNUL  = "must not contain NUL characters (\\u0000)"
	msgUTF8 = "must be valid UTF-8"
)

// errInvalidUTF8Body answers a JSON body that is not valid UTF-8 (RFC 8259 §8.1).
var errInvalidUTF8Body = &Error{Status: http.StatusBadRequest, Code: "invalid_utf8", Message: "request body is not valid UTF-8"}

// textProblem says what is wrong with s as text for the store, or "" when nothing is.
func textProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return msgUTF8
	case strings.IndexByte(s, 0) >= 0:
		return msgNUL
	}
	return ""
}

// nulField returns the path (target.device_ids[1], as the other field errors name them) of
// the first JSON string, object key included, holding a NUL character. raw must be valid JSON.
func nulField(raw []byte) (string, bool) {
	// \u0000 is the only way a valid JSON text can hold NUL (a raw control character is a
	// syntax error), so most bodies skip the walk.
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return "", false
	}
	type level struct {
		object bool
		key    string // object: the current key
		index  int    // array: the current index
		atKey  bool   // object: the next string is a key
	}
	var stack []level
	path := func() string {
		var b strings.Builder
		for _, l := range stack {
			switch {
			case !l.object:
				b.WriteString("[" + strconv.Itoa(l.index) + "]")
			case b.Len() > 0:
				b.WriteString("." + l.key)
			default:
				b.WriteString(l.key)
			}
		}
		return b.String()
	}
	// after records that a value ended inside the current container.
	after := func() {
		if n := len(stack); n > 0 {
			if stack[n-1].object {
				stack[n-1].atKey = true
			} else {
				stack[n-1].index++
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, level{object: true, atKey: true})
			case '[':
				stack = append(stack, level{})
			default:
				stack = stack[:len(stack)-1]
				after()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].atKey {
				stack[n-1].key, stack[n-1].atKey = t, false
				if strings.IndexByte(t, 0) >= 0 {
					return path(), true
				}
				continue
			}
			if strings.IndexByte(t, 0) >= 0 {
				if p := path(); p != "" {
					return p, true
				}
				return "body", true
			}
			after()
		default:
			after()
		}
	}
}

// readJSONBody reads a whole JSON request body (bounded by BodyLimit) and refuses text the
// store cannot keep as sent: invalid UTF-8 is 400.
func readJSONBody(body io.Reader) ([]byte, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, jsonError(err)
	}
	if !utf8.Valid(raw) {
		return nil, errInvalidUTF8Body
	}
	return raw, nil
}

// validTextMiddleware refuses a request whose path parameters or query values are not text
// the store can keep (NUL, invalid UTF-8) with 400 naming the parameter, before any handler
// looks them up.
func validTextMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		for i, name := range c.ParamNames() {
			if i >= len(c.ParamValues()) {
				break
			}
			if p := textProblem(c.ParamValues()[i]); p != "" {
				return &Error{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: "path parameter " + name + " " + p}
			}
		}
		for name, values := range c.Request().URL.Query() {
			for _, v := range append([]string{name}, values...) {
				if p := textProblem(v); p != "" {
					return &Error{Status: http.StatusBadRequest, Code: "invalid_parameter", Message: "query parameter " + strconv.Quote(strings.ToValidUTF8(name, "\uFFFD")) + " " + p}
				}
			}
		}
		return next(c)
	}
}
