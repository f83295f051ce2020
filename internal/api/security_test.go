package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/api"
	"github.com/jobforge/jobforge/internal/auth"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
)

// secure is an API server with authentication, tenants and rate limits.
type secure struct {
	baseURL string
	client  jobforgev1.JobServiceClient
	conn    *grpc.ClientConn
	tokens  map[string]string // name → bearer token
	signJWT func(claims jwt.MapClaims, method jwt.SigningMethod) string
	stack   *stack
}

const (
	testIssuer   = "https://issuer.test"
	testAudience = "jobforge"
)

func setupSecure(t *testing.T, limits api.Limits, maxWaiting int) *secure {
	t.Helper()
	ctx := context.Background()
	redisURL := redistest.NewDB(t)
	s := &secure{tokens: map[string]string{}}

	var keys []auth.Key
	add := func(name, tenant string, scopes []string, expires *time.Time) {
		tok, k, err := auth.NewKey(name, tenant, scopes, expires)
		require.NoError(t, err)
		keys = append(keys, k)
		s.tokens[name] = tok
	}
	past := time.Now().Add(-time.Hour)
	add("acme-admin", "acme", auth.AllScopes, nil)
	add("globex-admin", "globex", auth.AllScopes, nil)
	add("acme-reader", "acme", []string{auth.ScopeJobsRead}, nil)
	add("acme-primes", "acme", []string{auth.ScopeJobsRead, auth.ScopeJobsWrite + ":primes"}, nil)
	add("acme-expired", "acme", auth.AllScopes, &past)

	// JWT: an RSA key published as a JWKS file.
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","alg":"RS256","use":"sig","n":%q,"e":%q}]}`,
		base64.RawURLEncoding.EncodeToString(priv.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(priv.E)).Bytes()))
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	require.NoError(t, os.WriteFile(jwksFile, []byte(jwks), 0o600))
	verifier, err := auth.NewJWTVerifier(ctx, auth.JWTConfig{
		JWKS: jwksFile, Issuer: testIssuer, Audience: testAudience, Algorithms: []string{"RS256"},
	})
	require.NoError(t, err)
	s.signJWT = func(claims jwt.MapClaims, method jwt.SigningMethod) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["kid"] = "k1"
		var key any = priv
		if method == jwt.SigningMethodHS256 {
			key = []byte(jwks) // the classic confusion attack: public material as HMAC secret
		}
		signed, err := tok.SignedString(key)
		require.NoError(t, err)
		return signed
	}
	authn, err := auth.New(keys, verifier)
	require.NoError(t, err)

	st := newStack(t, redisURL, queue.StoreOptions{MaxWaitingPerTenant: maxWaiting})
	srv := st.serve(t, api.Options{
		Auth: authn, Limiter: queue.NewLimiter(st.rdb), Limits: limits,
		MaxBodyBytes: 1 << 20, QueueService: api.NewQueueService(st.store, testQueues, st.log),
	})
	s.stack = st
	s.conn = dial(t, srv.GRPCAddr())
	s.client = jobforgev1.NewJobServiceClient(s.conn)
	s.baseURL = "http://" + srv.HTTPAddr()
	return s
}

type restReq struct {
	method, path, body string
	headers            map[string]string
	as                 string // token name; "" = acme-admin, "-" = none
}

type restResp struct {
	code   int
	body   map[string]any
	header http.Header
}

func (s *secure) rest(t *testing.T, r restReq) restResp {
	t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	req, err := http.NewRequest(r.method, s.baseURL+r.path, strings.NewReader(r.body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	switch r.as {
	case "-":
	case "":
		req.Header.Set("Authorization", "Bearer "+s.tokens["acme-admin"])
	default:
		tok, ok := s.tokens[r.as]
		if !ok {
			tok = r.as // a raw token
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	out := restResp{code: resp.StatusCode, header: resp.Header}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &out.body), "non-JSON body %q", raw)
	}
	return out
}

func (s *secure) ctx(name string) context.Context {
	if name == "-" {
		return context.Background()
	}
	tok, ok := s.tokens[name]
	if !ok {
		tok = name
	}
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
}

func restReason(body map[string]any) string {
	details, _ := body["details"].([]any)
	for _, d := range details {
		m := d.(map[string]any)
		if m["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			return m["reason"].(string)
		}
	}
	return ""
}

func grpcReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei.GetReason()
		}
	}
	return ""
}

func nested(depth int) string {
	return `{"type":"simulate","payload":{"result":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}`
}

// TestHostileInput sends each bad request over REST and, where it applies,
// gRPC, and checks the exact status and ErrorInfo reason. Nothing may
// produce a 5xx, and the server must keep serving.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	other := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`, as: "globex-admin"})
	require.Equal(t, http.StatusOK, other.code)
	otherJob := other.body["name"].(string)
	now := time.Now()
	expiredJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "scope": "jobs.read",
		"exp": now.Add(-time.Hour).Unix()}, jwt.SigningMethodRS256)
	wrongAudJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": "someone-else", "tenant": "acme", "scope": "jobs.read",
		"exp": now.Add(time.Hour).Unix()}, jwt.SigningMethodRS256)
	hsJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "scope": "jobs.read",
		"exp": now.Add(time.Hour).Unix()}, jwt.SigningMethodHS256)
	futureJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "scope": "jobs.read",
		"exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}, jwt.SigningMethodRS256)
	noTenantJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "scope": "jobs.read",
		"exp": now.Add(time.Hour).Unix()}, jwt.SigningMethodRS256)
	bigPayload := fmt.Sprintf(`{"type":"simulate","payload":{"result":%q}}`, strings.Repeat("x", 70_000))
	create := func(j *jobforgev1.Job) func(context.Context, jobforgev1.JobServiceClient) error {
		return func(ctx context.Context, c jobforgev1.JobServiceClient) error {
			_, err := c.CreateJob(ctx, &jobforgev1.CreateJobRequest{Job: j})
			return err
		}
	}
	payload := func(m map[string]any) *structpb.Struct {
		p, err := structpb.NewStruct(m)
		require.NoError(t, err)
		return p
	}

	tests := []struct {
		name       string
		req        restReq
		wantHTTP   int
		wantReason string
		grpcAs     string
		grpcCall   func(context.Context, jobforgev1.JobServiceClient) error
		wantCode   codes.Code
	}{
		{name: "malformed JSON", req: restReq{path: "/v1/jobs", body: `{"type":`}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "wrong field type", req: restReq{path: "/v1/jobs", body: `{"type":5}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "unknown top-level field", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","colour":"red"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "duplicate keys", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","type":"primes"}`}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "empty body", req: restReq{path: "/v1/jobs", body: ``}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.CreateJob(ctx, &jobforgev1.CreateJobRequest{})
				return err
			}, wantCode: codes.InvalidArgument},
		{name: "unknown job type", req: restReq{path: "/v1/jobs", body: `{"type":"nope"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "nope"}), wantCode: codes.InvalidArgument},
		{name: "payload fails the type's schema", req: restReq{path: "/v1/jobs", body: `{"type":"primes","payload":{"limit":"lots"}}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "primes", Payload: payload(map[string]any{"limit": "lots"})}), wantCode: codes.InvalidArgument},
		{name: "payload unknown field", req: restReq{path: "/v1/jobs", body: `{"type":"primes","payload":{"limit":10,"x":1}}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "primes", Payload: payload(map[string]any{"limit": 10, "x": 1})}), wantCode: codes.InvalidArgument},
		{name: "unknown queue", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","queue":"nowhere"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", Queue: "nowhere"}), wantCode: codes.InvalidArgument},
		{name: "oversized body", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","payload":{"result":"` + strings.Repeat("x", 2<<20) + `"}}`}, wantHTTP: 413, wantReason: "BODY_TOO_LARGE"},
		{name: "oversized payload", req: restReq{path: "/v1/jobs", body: bigPayload}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", Payload: payload(map[string]any{"result": strings.Repeat("x", 70_000)})}), wantCode: codes.InvalidArgument},
		{name: "10000-deep nesting", req: restReq{path: "/v1/jobs", body: nested(10_000)}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "invalid UTF-8", req: restReq{path: "/v1/jobs", body: "{\"type\":\"simulate\",\"labels\":{\"a\":\"\xff\xfe\"}}"}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "NaN", req: restReq{path: "/v1/jobs", body: `{"type":"primes","payload":{"limit":NaN}}`}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "integer beyond 2^53", req: restReq{path: "/v1/jobs", body: `{"type":"primes","payload":{"limit":9007199254740993}}`}, wantHTTP: 400, wantReason: "INVALID_JSON"},
		{name: "negative timeout", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","timeout":"-5s"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", Timeout: durationpb.New(-5 * time.Second)}), wantCode: codes.InvalidArgument},
		{name: "huge timeout", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","timeout":"1000000s"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", Timeout: durationpb.New(1_000_000 * time.Second)}), wantCode: codes.InvalidArgument},
		{name: "sub-10ms timeout", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","timeout":"0.001s"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", Timeout: durationpb.New(time.Millisecond)}), wantCode: codes.InvalidArgument},
		{name: "schedule time in year 3000", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleTime":"3000-01-01T00:00:00Z"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "schedule time in 1970", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleTime":"1970-01-01T00:00:00Z"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "negative page size", req: restReq{method: "GET", path: "/v1/jobs?pageSize=-1"}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.ListJobs(ctx, &jobforgev1.ListJobsRequest{PageSize: -1})
				return err
			}, wantCode: codes.InvalidArgument},
		{name: "forged page token", req: restReq{method: "GET", path: "/v1/jobs?pageToken=eyJzIjo5OTl9.Zm9yZ2Vk"}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.ListJobs(ctx, &jobforgev1.ListJobsRequest{PageToken: "eyJzIjo5OTl9.Zm9yZ2Vk"})
				return err
			}, wantCode: codes.InvalidArgument},
		{name: "bad filter", req: restReq{method: "GET", path: "/v1/jobs?filter=colour%3Dred"}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "idempotency key with spaces", req: restReq{path: "/v1/jobs", body: `{"type":"simulate","idempotencyKey":"a b"}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT",
			grpcCall: create(&jobforgev1.Job{Type: "simulate", IdempotencyKey: "a b"}), wantCode: codes.InvalidArgument},
		{name: "idempotency header too long", req: restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, headers: map[string]string{"Idempotency-Key": strings.Repeat("k", 200)}}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "wrong content type", req: restReq{path: "/v1/jobs", body: `type=simulate`, headers: map[string]string{"Content-Type": "text/plain"}}, wantHTTP: 415, wantReason: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "multipart body", req: restReq{path: "/v1/jobs", body: `--x--`, headers: map[string]string{"Content-Type": "multipart/form-data; boundary=x"}}, wantHTTP: 415, wantReason: "UNSUPPORTED_MEDIA_TYPE"},
		{name: "missing credentials", req: restReq{method: "GET", path: "/v1/jobTypes", as: "-"}, wantHTTP: 401, wantReason: "CREDENTIALS_MISSING",
			grpcAs: "-", grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
				return err
			}, wantCode: codes.Unauthenticated},
		{name: "unknown API key", req: restReq{method: "GET", path: "/v1/jobTypes", as: "jfk_acme-admin.not-the-secret"}, wantHTTP: 401, wantReason: "CREDENTIALS_INVALID",
			grpcAs: "jfk_acme-admin.not-the-secret", grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
				return err
			}, wantCode: codes.Unauthenticated},
		{name: "malformed Authorization header", req: restReq{method: "GET", path: "/v1/jobTypes", as: "-", headers: map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}}, wantHTTP: 401, wantReason: "CREDENTIALS_MALFORMED"},
		{name: "expired API key", req: restReq{method: "GET", path: "/v1/jobTypes", as: "acme-expired"}, wantHTTP: 401, wantReason: "CREDENTIALS_EXPIRED",
			grpcAs: "acme-expired", grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.ListJobTypes(ctx, &jobforgev1.ListJobTypesRequest{})
				return err
			}, wantCode: codes.Unauthenticated},
		{name: "expired JWT", req: restReq{method: "GET", path: "/v1/jobTypes", as: expiredJWT}, wantHTTP: 401, wantReason: "CREDENTIALS_EXPIRED"},
		{name: "JWT for another audience", req: restReq{method: "GET", path: "/v1/jobTypes", as: wrongAudJWT}, wantHTTP: 401, wantReason: "CREDENTIALS_INVALID"},
		{name: "JWT signed with HS256 (algorithm confusion)", req: restReq{method: "GET", path: "/v1/jobTypes", as: hsJWT}, wantHTTP: 401, wantReason: "CREDENTIALS_INVALID"},
		{name: "JWT not valid yet", req: restReq{method: "GET", path: "/v1/jobTypes", as: futureJWT}, wantHTTP: 401, wantReason: "CREDENTIALS_NOT_YET_VALID"},
		{name: "JWT without tenant", req: restReq{method: "GET", path: "/v1/jobTypes", as: noTenantJWT}, wantHTTP: 401, wantReason: "CREDENTIALS_INVALID"},
		{name: "read-only key creates", req: restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, as: "acme-reader"}, wantHTTP: 403, wantReason: "MISSING_SCOPE",
			grpcAs: "acme-reader", grpcCall: create(&jobforgev1.Job{Type: "simulate"}), wantCode: codes.PermissionDenied},
		{name: "type-restricted key creates another type", req: restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, as: "acme-primes"}, wantHTTP: 403, wantReason: "MISSING_SCOPE",
			grpcAs: "acme-primes", grpcCall: create(&jobforgev1.Job{Type: "simulate"}), wantCode: codes.PermissionDenied},
		{name: "read-only key cancels (permission before existence)", req: restReq{path: "/v1/jobs/does-not-exist:cancel", body: `{}`, as: "acme-reader"}, wantHTTP: 403, wantReason: "MISSING_SCOPE"},
		{name: "non-admin lists queues", req: restReq{method: "GET", path: "/v1/queues", as: "acme-reader"}, wantHTTP: 403, wantReason: "MISSING_SCOPE"},
		{name: "other tenant's job", req: restReq{method: "GET", path: "/v1/" + otherJob}, wantHTTP: 404, wantReason: "JOB_NOT_FOUND",
			grpcCall: func(ctx context.Context, c jobforgev1.JobServiceClient) error {
				_, err := c.GetJob(ctx, &jobforgev1.GetJobRequest{Name: otherJob})
				return err
			}, wantCode: codes.NotFound},
		{name: "unknown job", req: restReq{method: "GET", path: "/v1/jobs/0190c0de-0000-7000-8000-000000000000"}, wantHTTP: 404, wantReason: "JOB_NOT_FOUND"},
		{name: "malformed job name", req: restReq{method: "GET", path: "/v1/jobs/bad%20name"}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
		{name: "batch over the limit", req: restReq{path: "/v1/jobs:batchCreate", body: `{"requests":[` + strings.TrimSuffix(strings.Repeat(`{"job":{"type":"simulate"}},`, 1001), ",") + `]}`}, wantHTTP: 400, wantReason: "INVALID_ARGUMENT"},
	}
	require.GreaterOrEqual(t, len(tests), 35)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := s.rest(t, tt.req)
			require.Equal(t, tt.wantHTTP, resp.code, "REST body: %v", resp.body)
			require.Equal(t, tt.wantReason, restReason(resp.body), "REST body: %v", resp.body)
			require.NotEmpty(t, resp.body["message"])
			if tt.wantHTTP == 401 {
				require.Equal(t, `Bearer realm="jobforge"`, resp.header.Get("WWW-Authenticate"))
			}
			if tt.grpcCall == nil {
				return
			}
			as := tt.grpcAs
			if as == "" {
				as = "acme-admin"
			}
			err := tt.grpcCall(s.ctx(as), s.client)
			require.Equal(t, tt.wantCode, status.Code(err), "gRPC: %v", err)
			require.Equal(t, tt.wantReason, grpcReason(err), "gRPC: %v", err)
		})
	}
	t.Run("still serving", func(t *testing.T) {
		t.Parallel()
		resp := s.rest(t, restReq{method: "GET", path: "/v1/jobTypes"})
		require.Equal(t, http.StatusOK, resp.code)
	})
}

func TestValidJWTAndScopes(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	tok := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "sub": "svc-reports",
		"scope": "jobs.read jobs.write", "exp": time.Now().Add(time.Hour).Unix()}, jwt.SigningMethodRS256)
	resp := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, as: tok})
	require.Equal(t, http.StatusOK, resp.code, "%v", resp.body)
	// The JWT's tenant is acme: an acme API key sees the job.
	got := s.rest(t, restReq{method: "GET", path: "/v1/" + resp.body["name"].(string), as: "acme-reader"})
	require.Equal(t, http.StatusOK, got.code)
	// No jobs.cancel scope in the token.
	denied := s.rest(t, restReq{path: "/v1/" + resp.body["name"].(string) + ":cancel", body: `{}`, as: tok})
	require.Equal(t, http.StatusForbidden, denied.code)
	// A type-restricted key may create its type.
	ok := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"primes","payload":{"limit":10}}`, as: "acme-primes"})
	require.Equal(t, http.StatusOK, ok.code, "%v", ok.body)
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	mine := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s","idempotencyKey":"same-key"}`, as: "acme-admin"})
	require.Equal(t, http.StatusOK, mine.code)
	theirs := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s","idempotencyKey":"same-key"}`, as: "globex-admin"})
	require.Equal(t, http.StatusOK, theirs.code)
	require.NotEqual(t, mine.body["name"], theirs.body["name"], "idempotency keys are per tenant")
	name := theirs.body["name"].(string)

	missing := "jobs/0190c0de-0000-7000-8000-000000000000"
	for _, tt := range []struct{ name, method, suffix, body string }{
		{"get", "GET", "", ""},
		{"watch", "GET", ":watch", ""},
		{"cancel", "POST", ":cancel", "{}"},
		{"retry", "POST", ":retry", "{}"},
	} {
		// Another tenant's job is indistinguishable from a missing one.
		a := s.rest(t, restReq{method: tt.method, path: "/v1/" + name + tt.suffix, body: tt.body, as: "acme-admin"})
		b := s.rest(t, restReq{method: tt.method, path: "/v1/" + missing + tt.suffix, body: tt.body, as: "acme-admin"})
		require.Equal(t, http.StatusNotFound, a.code, tt.name)
		require.Equal(t, b.code, a.code, tt.name)
		require.Equal(t, strings.Replace(messageOf(b.body), missing, name, 1), messageOf(a.body), tt.name)
	}
	_, err := s.client.WatchJob(s.ctx("acme-admin"), &jobforgev1.WatchJobRequest{Name: name})
	require.NoError(t, err) // the stream opens; the error comes with the first Recv
	stream, _ := s.client.WatchJob(s.ctx("acme-admin"), &jobforgev1.WatchJobRequest{Name: name})
	_, err = stream.Recv()
	require.Equal(t, codes.NotFound, status.Code(err))

	list := s.rest(t, restReq{method: "GET", path: "/v1/jobs", as: "acme-admin"})
	require.Equal(t, http.StatusOK, list.code)
	require.Len(t, list.body["jobs"], 1)
	require.Equal(t, mine.body["name"], list.body["jobs"].([]any)[0].(map[string]any)["name"])

	// The owner still sees and controls its job.
	got := s.rest(t, restReq{path: "/v1/" + name + ":cancel", body: `{}`, as: "globex-admin"})
	require.Equal(t, http.StatusOK, got.code)
	require.Equal(t, "key:globex-admin", got.body["cancellation"].(map[string]any)["requestedBy"])
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{PrincipalWrite: 3, PrincipalRead: 1000}, 0)
	var limited restResp
	for i := 0; i < 20; i++ {
		r := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`})
		if r.code == http.StatusTooManyRequests {
			limited = r
			break
		}
		require.Equal(t, http.StatusOK, r.code, "%v", r.body)
	}
	require.Equal(t, http.StatusTooManyRequests, limited.code, "the write bucket (3/s) runs dry")
	require.Equal(t, "RATE_LIMITED", restReason(limited.body))
	after, err := strconv.Atoi(limited.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After header: %q", limited.header.Get("Retry-After"))
	require.GreaterOrEqual(t, after, 1)

	// Reads have their own bucket.
	require.Equal(t, http.StatusOK, s.rest(t, restReq{method: "GET", path: "/v1/jobs"}).code)

	// gRPC callers get RESOURCE_EXHAUSTED with RetryInfo. The bucket gains
	// a token every 333 ms, so on a slow machine it may hold one again by
	// now: call until it runs dry (20 calls are far more than it can hold).
	for i := 0; i < 20; i++ {
		_, err = s.client.CreateJob(s.ctx("acme-admin"), &jobforgev1.CreateJobRequest{Job: &jobforgev1.Job{Type: "simulate"}})
		if status.Code(err) != codes.OK {
			break
		}
	}
	require.Equal(t, codes.ResourceExhausted, status.Code(err))
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri
		}
	}
	require.NotNil(t, retry)
	require.Positive(t, retry.GetRetryDelay().AsDuration())

	// The bucket refills: writes succeed again once the window has passed.
	redistest.Eventually(t, 5*time.Second, func() bool {
		return s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`}).code == http.StatusOK
	}, "writes recover after the rate-limit window")

	// Another caller has its own bucket.
	require.Equal(t, http.StatusOK, s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, as: "globex-admin"}).code)
}

func TestWaitingQuota(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 2)
	for range 2 {
		require.Equal(t, http.StatusOK, s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`}).code)
	}
	r := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`})
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.Equal(t, "QUOTA_EXCEEDED", restReason(r.body))
	// Another tenant is unaffected.
	require.Equal(t, http.StatusOK, s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate"}`, as: "globex-admin"}).code)
}

// messageOf returns the error message of a unary error body or of a
// streaming (NDJSON) error line.
func messageOf(body map[string]any) string {
	if m, ok := body["message"].(string); ok {
		return m
	}
	if e, ok := body["error"].(map[string]any); ok {
		m, _ := e["message"].(string)
		return m
	}
	return ""
}
