package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/redistest"
)

// The contract check: every response a test of this package receives from a
// REST server through http.DefaultClient (or http.Get) is validated against
// the generated OpenAPI document, api/gen/openapi/jobforge.swagger.json, with
// kin-openapi: the status must be documented for the route (grpc-gateway
// documents "default" as google.rpc.Status) and the body must match the
// schema. So the document and the server cannot drift apart unnoticed.
//
// What is checked, and the deliberate exceptions:
//   - A path under /v1/ that the document has a route for: status, headers
//     the document declares, and the JSON body against the operation's
//     response schema.
//   - A path under /v1/ with no route in the document (an unknown path, a
//     method the path does not support): the body must be a google.rpc.Status
//     as the document defines it (rpcStatus), since every REST error is one.
//   - Not checked: streaming 200 responses — WatchJob as NDJSON (one
//     {"result": JobEvent} object per line, which Swagger 2 cannot describe
//     as a body) and as SSE (text/event-stream) — because reading them here
//     would block the test that reads the stream; their error responses
//     (non-200) are checked like any other. Paths outside /v1/ (/healthz,
//     /readyz, /docs, /openapi.json, /monitoring, /metrics) are not part of
//     the document.
//   - A non-200 response of a streaming method (an error before the first
//     event: unknown job, bad credentials) may also be the stream's
//     documented error chunk, {"error": Status}, rather than the operation's
//     "default" plain Status: grpc-gateway's NDJSON path sends that form
//     (the SSE path sends the plain Status). Accepted until the NDJSON path
//     answers like every other error.
//
// A violation fails the test that started the server (serve registers it
// with contractServers); a violation on a server no test registered fails
// the package run in TestMain.

// contractMain is the package's TestMain: redistest.Main with the contract
// check installed on http.DefaultTransport.
func contractMain(m *testing.M) {
	c, err := loadContract("../../api/gen/openapi/jobforge.swagger.json")
	if err != nil {
		fmt.Fprintln(os.Stderr, "contract:", err)
		os.Exit(1)
	}
	http.DefaultTransport = &contractTransport{next: http.DefaultTransport, contract: c}
	os.Exit(runContract(m))
}

func runContract(m *testing.M) int {
	code := redistest.Run(m)
	if v := contractServers.unclaimed(); len(v) > 0 {
		fmt.Fprintf(os.Stderr, "contract: %d response(s) from servers no test registered do not match the OpenAPI document:\n  %s\n",
			len(v), strings.Join(v, "\n  "))
		code = 1
	}
	return code
}

// contract is the generated document, converted to OpenAPI 3 for kin-openapi.
type contract struct {
	router  routers.Router
	status  *openapi3.Schema                         // google.rpc.Status
	streams map[*openapi3.Operation]*openapi3.Schema // server-streaming methods → their error chunk
}

func loadContract(path string) (*contract, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v2 openapi2.T
	if err := json.Unmarshal(raw, &v2); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err := openapi2conv.ToV3(&v2)
	if err != nil {
		return nil, fmt.Errorf("%s: convert to OpenAPI 3: %w", path, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// The document names no host: match requests to any test server.
	doc.Servers = nil
	// A field the server sends that the document does not declare is drift
	// too: close every object schema that lists its properties (free-form
	// objects such as google.protobuf.Struct and Any's extra fields stay open).
	for _, s := range doc.Components.Schemas {
		closeObjects(s, map[*openapi3.Schema]bool{})
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("%s: routes: %w", path, err)
	}
	status := doc.Components.Schemas["rpcStatus"]
	if status == nil || status.Value == nil {
		return nil, errors.New(path + ": no rpcStatus schema")
	}
	// Every error the server sends has a code and a message; without them
	// any closed-off object would pass as a Status.
	statusSchema := *status.Value
	statusSchema.Required = []string{"code", "message"}
	// grpc-gateway documents a server-streaming method's 200 response as
	// "Stream result of <message>".
	// grpc-gateway documents a server-streaming method's 200 response as
	// "Stream result of <message>": objects {"result": <message>} or
	// {"error": Status}. Its NDJSON path also sends an error that ends the
	// stream before it started in the second form, with the error's status.
	streams := map[*openapi3.Operation]*openapi3.Schema{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			ok := op.Responses.Value("200")
			if ok == nil || ok.Value == nil {
				continue
			}
			mt := ok.Value.Content.Get("application/json")
			if mt == nil || mt.Schema == nil || mt.Schema.Value == nil || !strings.HasPrefix(mt.Schema.Value.Title, "Stream result of ") {
				continue
			}
			chunk := *mt.Schema.Value
			chunk.Required = []string{"error"}
			no := false
			chunk.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
			streams[op] = &chunk
		}
	}
	if len(streams) == 0 {
		return nil, errors.New(path + ": no streaming method found (WatchJob)")
	}
	return &contract{router: router, status: &statusSchema, streams: streams}, nil
}

// closeObjects sets additionalProperties to false on s and the schemas it
// contains wherever s lists properties and says nothing about others.
func closeObjects(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		closeObjects(p, seen)
	}
	closeObjects(s.Items, seen)
	closeObjects(s.AdditionalProperties.Schema, seen)
	for _, l := range []openapi3.SchemaRefs{s.AllOf, s.AnyOf, s.OneOf} {
		for _, r := range l {
			closeObjects(r, seen)
		}
	}
}

// check validates one response; body is the whole body. It returns nil for
// responses it does not check (see above).
func (c *contract) check(req *http.Request, status int, header http.Header, body []byte) error {
	if !strings.HasPrefix(req.URL.Path, "/v1/") {
		return nil
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		// Not a documented route or method: the body must be a Status.
		return visitJSON(c.status, body, "undocumented route answered %d with a body that is not a google.rpc.Status", status)
	}
	err = c.validate(req, route, params, status, header, body)
	if chunk := c.streams[route.Operation]; err != nil && chunk != nil && status != http.StatusOK {
		if visitJSON(chunk, body, "") == nil {
			return nil
		}
	}
	return err
}

func (c *contract) validate(req *http.Request, route *routers.Route, params map[string]string, status int, header http.Header, body []byte) error {
	return openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: status,
		Header: header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	})
}

func visitJSON(schema *openapi3.Schema, body []byte, format string, args ...any) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf(format+": not JSON: %w", append(args, err)...)
	}
	if err := schema.VisitJSON(v); err != nil {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return nil
}

// streaming reports whether resp is a stream the check leaves alone: a 200
// of a server-streaming method, or any SSE response.
func (c *contract) streaming(req *http.Request, resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK {
		return false
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/event-stream" {
		return true
	}
	route, _, err := c.router.FindRoute(req)
	return err == nil && c.streams[route.Operation] != nil
}

// contractTransport validates every response on its way to the test.
type contractTransport struct {
	next     http.RoundTripper
	contract *contract
}

func (c *contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || !strings.HasPrefix(req.URL.Path, "/v1/") || c.contract.streaming(req, resp) {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err := c.contract.check(req, resp.StatusCode, resp.Header, body); err != nil {
		contractServers.report(req.URL.Host, fmt.Sprintf("%s %s → %d %s: does not match the OpenAPI document: %v", req.Method, req.URL.RequestURI(), resp.StatusCode, body, err))
	}
	return resp, nil
}

// contractServers maps a test server's address to its test, so a violation
// fails the test that made the request.
var contractServers = &serverTests{byAddr: map[string]testing.TB{}}

type serverTests struct {
	mu      sync.Mutex
	byAddr  map[string]testing.TB
	orphans []string
}

// register attributes the responses of the server at addr to tb until tb ends.
func (s *serverTests) register(tb testing.TB, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byAddr[addr] = tb
	tb.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.byAddr, addr)
	})
}

func (s *serverTests) report(addr, violation string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tb, ok := s.byAddr[addr]; ok {
		tb.Errorf("%s", violation)
		return
	}
	s.orphans = append(s.orphans, violation)
}

func (s *serverTests) unclaimed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.orphans...)
}

// The check itself: it must reject what the document does not allow, or the
// contract it enforces on every other test is empty.
func TestContractCheck(t *testing.T) {
	t.Parallel()
	c, err := loadContract("../../api/gen/openapi/jobforge.swagger.json")
	require.NoError(t, err)
	const job = `{"name":"jobs/abc","type":"primes","state":"PENDING","maxAttempts":3,"timeout":"600s","createTime":"2026-01-02T03:04:05Z"}`
	const status = `{"code":5,"message":"job \"jobs/abc\" not found","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"JOB_NOT_FOUND","domain":"jobforge.dev"}]}`
	tests := []struct {
		name         string
		method, path string
		status       int
		body         string
		wantErr      string // "" for a response that conforms
	}{
		{"job as documented", "GET", "/v1/jobs/abc", 200, job, ""},
		{"custom method returns the job", "POST", "/v1/jobs/abc:cancel", 200, job, ""},
		{"error as Status", "GET", "/v1/jobs/abc", 404, status, ""},
		{"empty list", "GET", "/v1/jobs", 200, `{"jobs":[]}`, ""},
		{"field the document lacks", "GET", "/v1/jobs/abc", 200, `{"name":"jobs/abc","colour":"red"}`, `"colour" is unsupported`},
		{"wrong JSON type", "GET", "/v1/jobs/abc", 200, `{"name":"jobs/abc","maxAttempts":"three"}`, "maxAttempts"},
		{"enum value the document lacks", "GET", "/v1/jobs/abc", 200, `{"name":"jobs/abc","state":"EXPLODED"}`, "state"},
		{"int64 as a number", "GET", "/v1/queues", 200, `{"queues":[{"name":"queues/default","pending":1}]}`, "pending"},
		{"error that is not a Status", "GET", "/v1/jobs/abc", 404, `{"error":"not found"}`, "error"},
		{"405 with a Status", "PUT", "/v1/jobs", 405, `{"code":12,"message":"method PUT not allowed"}`, ""},
		{"unknown path with a job body", "GET", "/v1/nothing", 404, job, "not a google.rpc.Status"},
		{"stream error as the stream's error chunk", "GET", "/v1/jobs/abc:watch", 404, `{"error":` + status + `}`, ""},
		{"stream error as Status", "GET", "/v1/jobs/abc:watch", 404, status, ""},
		{"stream error in neither form", "GET", "/v1/jobs/abc:watch", 404, `{"result":{}}`, "code"},
		{"outside the API", "GET", "/healthz", 200, `ok`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest(tt.method, "http://127.0.0.1:1"+tt.path, nil)
			header := http.Header{"Content-Type": {"application/json"}}
			err := c.check(req, tt.status, header, []byte(tt.body))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
