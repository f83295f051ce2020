package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
)

// Request body rules applied before the gateway decodes a body.
const (
	// DefaultMaxBodyBytes caps REST request bodies (a full batch of 1000
	// small jobs fits comfortably); larger bodies get 413.
	DefaultMaxBodyBytes = 4 << 20
	// maxJSONDepth caps nesting, so a hostile body cannot make a decoder
	// recurse deeply.
	maxJSONDepth = 64
	// maxExactInt is the largest integer a JSON number keeps exactly once
	// decoded into a double (payloads are google.protobuf.Struct).
	maxExactInt = 1 << 53
)

// guardBody enforces, for requests with a body: a JSON content type (415
// otherwise), the size cap (413), and well-formed JSON without duplicate
// keys, excessive nesting, invalid UTF-8 or integers that would silently
// lose precision (400) — problems the gateway would otherwise accept
// quietly or report vaguely.
//
// curl's -d labels bodies application/x-www-form-urlencoded unless told
// otherwise; since no form body is valid here, such a body is accepted when
// it is JSON, which keeps `curl -d '{…}'` working. The content-type rule
// is about rejecting other formats, not cross-site requests: credentials
// are bearer tokens, which browsers never attach on their own.
func guardBody(next http.Handler, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
			next.ServeHTTP(w, r)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			mt, _, err := mime.ParseMediaType(ct)
			if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/x-www-form-urlencoded") {
				writeError(w, http.StatusUnsupportedMediaType, codes.InvalidArgument, "UNSUPPORTED_MEDIA_TYPE",
					fmt.Sprintf("unsupported Content-Type %q: send application/json", ct))
				return
			}
		}
		if r.ContentLength > maxBytes {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "BODY_TOO_LARGE",
				fmt.Sprintf("request body is %d bytes; at most %d are accepted", r.ContentLength, maxBytes))
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, codes.InvalidArgument, "BODY_UNREADABLE", "could not read request body")
			return
		}
		if int64(len(body)) > maxBytes {
			writeError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, "BODY_TOO_LARGE",
				fmt.Sprintf("request body exceeds %d bytes", maxBytes))
			return
		}
		if err := checkJSON(body); err != nil {
			writeError(w, http.StatusBadRequest, codes.InvalidArgument, "INVALID_JSON", err.Error())
			return
		}
		r.Body = &requestBody{Reader: bytes.NewReader(body)}
		r.ContentLength = int64(len(body))
		next.ServeHTTP(w, r)
	})
}

// checkJSON validates a request body's JSON structure. An empty body is
// left to the gateway (it is valid for methods without a body).
func checkJSON(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if !utf8.Valid(body) {
		return errors.New("malformed JSON: body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // object: next string token is a key
	}
	var stack []*frame
	done := false // a complete top-level value has been read
	for {
		tok, err := dec.Token()
		if err == nil && done {
			return errors.New("malformed JSON: unexpected data after the top-level value")
		}
		if errors.Is(err, io.EOF) {
			if len(stack) != 0 {
				return errors.New("malformed JSON: unexpected end of input")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("malformed JSON: %v", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("JSON nesting deeper than %d levels", maxJSONDepth)
				}
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, expect: v == '{'})
				continue
			default:
				stack = stack[:len(stack)-1]
				done = len(stack) == 0
				continue
			}
		case string:
			if top != nil && top.object && top.expect {
				if top.keys[v] {
					return fmt.Errorf("duplicate key %q in JSON object", v)
				}
				top.keys[v] = true
				top.expect = false
				continue
			}
		case json.Number:
			if err := checkNumber(v); err != nil {
				return err
			}
		}
		if top != nil && top.object {
			top.expect = true
		}
		if top == nil {
			done = true // a scalar top-level value
		}
	}
}

func checkNumber(n json.Number) error {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		i, err := n.Int64()
		if err != nil || i > maxExactInt || i < -maxExactInt {
			return fmt.Errorf("integer %s is beyond ±2^53 and would lose precision; send it as a string", s)
		}
		return nil
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		return fmt.Errorf("number %s is out of range", s)
	}
	return nil
}

// writeError writes a google.rpc.Status JSON body like the gateway's.
func writeError(w http.ResponseWriter, httpCode int, code codes.Code, reason, msg string) {
	st := withDetails(code, msg, &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain})
	writeStatusCode(w, httpCode, st)
}
