package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// MaxDepth bounds the nesting of objects and arrays in any payload (the envelope counts as 1).
// The firmware parses with a recursive parser on a small task stack.
const MaxDepth = 16

// MaxSafeInteger is the largest integer every field accepts: 2^53-1, the largest integer a
// double holds exactly, because C JSON parsers such as cJSON store numbers as doubles.
const MaxSafeInteger = 1<<53 - 1

// checkJSON accepts exactly one JSON object of valid UTF-8 with no duplicate keys at any
// depth, nesting at most MaxDepth, no \u0000 escape and no unpaired surrogate escape. These
// are the inputs on which parsers disagree (first or last duplicate wins, truncation at NUL,
// replacement characters), so refusing them keeps Go and the firmware reading the same thing.
func checkJSON(data []byte) error {
	if !utf8.Valid(data) {
		return fmt.Errorf("%w: invalid UTF-8", ErrMalformed)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	if err := checkEscapes(data); err != nil {
		return err
	}
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]struct{}
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.object {
					top.expectKey = true
				}
				if len(stack) == MaxDepth {
					return fmt.Errorf("%w: nesting deeper than %d", ErrMalformed, MaxDepth)
				}
				stack = append(stack, &frame{object: t == '{', expectKey: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		default:
			if top != nil && top.object && top.expectKey {
				key := tok.(string)
				if top.keys == nil {
					top.keys = make(map[string]struct{})
				}
				if _, dup := top.keys[key]; dup {
					return fmt.Errorf("%w: duplicate key %q", ErrMalformed, key)
				}
				top.keys[key] = struct{}{}
				top.expectKey = false
			} else if top != nil && top.object {
				top.expectKey = true
			}
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: data after the object", ErrMalformed)
	}
	return nil
}

// checkEscapes scans the string literals of syntactically valid JSON for \u escapes that
// decode to NUL or to an unpaired UTF-16 surrogate.
func checkEscapes(data []byte) error {
	inString := false
	for i := 0; i < len(data); i++ {
		c := data[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 >= len(data) {
				return nil // the syntax check reports it
			}
			if data[i+1] != 'u' {
				i++
				continue
			}
			r, ok := hex4(data, i+2)
			if !ok {
				return nil
			}
			switch {
			case r == 0:
				return fmt.Errorf("%w: \\u0000 in a string", ErrMalformed)
			case r >= 0xD800 && r <= 0xDBFF:
				if i+11 < len(data) && data[i+6] == '\\' && data[i+7] == 'u' {
					if lo, ok := hex4(data, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
						i += 11
						continue
					}
				}
				return fmt.Errorf("%w: unpaired surrogate escape", ErrMalformed)
			case r >= 0xDC00 && r <= 0xDFFF:
				return fmt.Errorf("%w: unpaired surrogate escape", ErrMalformed)
			}
			i += 5
		}
	}
	return nil
}

func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[at:at+4]), 16, 16)
	return rune(v), err == nil
}

// reader decodes one payload field by field and keeps the first error, so a decoder reads as
// a flat list of field rules and reports the first field that breaks one.
type reader struct{ err error }

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
}

// obj is one JSON object being read; path is its position in the payload ("" for the top).
type obj struct {
	r      *reader
	path   string
	fields map[string]json.RawMessage
}

func (r *reader) object(path string, raw json.RawMessage) obj {
	o := obj{r: r, path: path}
	if jsonType(raw) != "object" {
		r.fail(path, "must be an object")
		return o
	}
	if err := json.Unmarshal(raw, &o.fields); err != nil {
		r.fail(path, "must be an object")
	}
	return o
}

func (o obj) name(key string) string {
	if o.path == "" {
		return key
	}
	return o.path + "." + key
}

// value returns the raw value of key; absent and null are the same: not there.
func (o obj) value(key string, required bool) (json.RawMessage, bool) {
	raw, ok := o.fields[key]
	if !ok || jsonType(raw) == "null" {
		if required {
			o.r.fail(o.name(key), "required")
		}
		return nil, false
	}
	return raw, true
}

func (o obj) str(key string, required bool, maxLen int) string {
	raw, ok := o.value(key, required)
	if !ok {
		return ""
	}
	var s string
	if jsonType(raw) != "string" || json.Unmarshal(raw, &s) != nil {
		o.r.fail(o.name(key), "must be a string")
		return ""
	}
	if required && s == "" {
		o.r.fail(o.name(key), "must not be empty")
		return ""
	}
	if len(s) > maxLen {
		o.r.fail(o.name(key), "longer than %d bytes", maxLen)
		return ""
	}
	return s
}

// check runs valid on a string field that is present and non-empty.
func (o obj) check(key, s string, valid func(string) bool, what string) string {
	if s != "" && !valid(s) {
		o.r.fail(o.name(key), "must be %s", what)
		return ""
	}
	return s
}

func (o obj) integer(key string, required bool, lo, hi int64) int64 {
	raw, ok := o.value(key, required)
	if !ok {
		return 0
	}
	return o.r.integer(o.name(key), raw, lo, hi)
}

func (r *reader) integer(field string, raw json.RawMessage, lo, hi int64) int64 {
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if jsonType(raw) != "number" || err != nil && !errors.Is(err, strconv.ErrRange) {
		r.fail(field, "must be an integer")
		return 0
	}
	if err != nil || n < lo || n > hi {
		r.fail(field, "must be between %d and %d", lo, hi)
		return 0
	}
	return n
}

func (o obj) boolean(key string, required bool) bool {
	raw, ok := o.value(key, required)
	if !ok {
		return false
	}
	switch string(raw) {
	case "true":
		return true
	case "false":
		return false
	}
	o.r.fail(o.name(key), "must be a boolean")
	return false
}

func (o obj) enum(key string, required bool, allowed ...string) string {
	s := o.str(key, required, 64)
	if s == "" {
		if _, present := o.value(key, false); present && o.r.err == nil {
			o.r.fail(o.name(key), "must be one of %v", allowed)
		}
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	o.r.fail(o.name(key), "must be one of %v", allowed)
	return ""
}

func (o obj) child(key string, required bool) (obj, bool) {
	raw, ok := o.value(key, required)
	if !ok {
		return obj{r: o.r, path: o.name(key)}, false
	}
	return o.r.object(o.name(key), raw), true
}

func (o obj) array(key string, required bool, minItems, maxItems int) []json.RawMessage {
	raw, ok := o.value(key, required)
	if !ok {
		return nil
	}
	var items []json.RawMessage
	if jsonType(raw) != "array" || json.Unmarshal(raw, &items) != nil {
		o.r.fail(o.name(key), "must be an array")
		return nil
	}
	if len(items) < minItems || len(items) > maxItems {
		o.r.fail(o.name(key), "must have %d to %d items", minItems, maxItems)
		return nil
	}
	return items
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// jsonType names the type of a syntactically valid JSON value from its first byte.
func jsonType(raw json.RawMessage) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// open runs the checks every payload shares, in this order: size, JSON well-formedness, the
// protocol version. The order is part of the protocol: it decides which class a payload with
// several faults gets, and the firmware follows it too.
func open(kind string, data []byte, maxSize int) (obj, error) {
	if len(data) > maxSize {
		return obj{}, fmt.Errorf("%w: %s payload of %d bytes, limit %d", ErrTooLarge, kind, len(data), maxSize)
	}
	if err := checkJSON(data); err != nil {
		return obj{}, fmt.Errorf("%s: %w", kind, err)
	}
	r := &reader{}
	o := r.object("", data)
	v := o.integer("v", true, 1, MaxSafeInteger)
	if r.err != nil {
		return obj{}, r.err
	}
	if v > Version {
		return obj{}, fmt.Errorf("%w: %s payload has v=%d, this side speaks up to v=%d", ErrUnsupportedVersion, kind, v, Version)
	}
	return o, nil
}

// marshal encodes msg with the envelope's "v" first, then decodes the result with the kind's
// own decoder, so an encoder can never emit a payload the other side would refuse.
func marshal[T any](msg T, decode func([]byte) (T, error)) ([]byte, error) {
	return encode(msg, func(data []byte) error {
		_, err := decode(data)
		return err
	})
}

func encode(msg any, check func([]byte) error) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // URLs keep their '&'; the firmware reads either form
	err := enc.Encode(msg)
	body := bytes.TrimRight(buf.Bytes(), "\n")
	if err != nil || len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("protocol: encode %T: %v", msg, err)
	}
	data := make([]byte, 0, len(body)+8)
	data = append(data, `{"v":`...)
	data = strconv.AppendInt(data, Version, 10)
	if len(body) > 2 {
		data = append(data, ',')
	}
	data = append(data, body[1:]...)
	if err := check(data); err != nil {
		return nil, err
	}
	return data, nil
}

// done returns v, or the zero value and the first field error.
func done[T any](v T, r *reader) (T, error) {
	if r.err != nil {
		var zero T
		return zero, r.err
	}
	return v, nil
}
