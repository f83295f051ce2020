package api_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/api"
)

// watchFormat is one of the two REST encodings of WatchJob.
type watchFormat string

const (
	ndjson watchFormat = "ndjson"
	sse    watchFormat = "sse"
)

// openWatch starts a REST watch of name with the given bearer token ("" for
// none), resuming after afterID when it is set: NDJSON with the
// afterEventId query parameter, SSE with Last-Event-ID as EventSource does.
func (s *secure) openWatch(t *testing.T, f watchFormat, name, token, afterID string) *http.Response {
	t.Helper()
	u := s.baseURL + "/v1/" + name + ":watch"
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	switch f {
	case sse:
		req.Header.Set("Accept", "text/event-stream")
		if afterID != "" {
			req.Header.Set("Last-Event-ID", afterID)
		}
	case ndjson:
		if afterID != "" {
			req.URL.RawQuery = url.Values{"afterEventId": {afterID}}.Encode()
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

// readWatch reads job events from a watch response until the stream ends
// or stop says so. SSE events must carry their event id in the `id:` field.
func readWatch(t *testing.T, f watchFormat, resp *http.Response, stop func(ev map[string]any) bool) []map[string]any {
	t.Helper()
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sseID := ""
	for sc.Scan() {
		var ev map[string]any
		switch f {
		case ndjson:
			var line map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &line), sc.Text())
			require.Nil(t, line["error"], "stream error: %v", line)
			ev = line["result"].(map[string]any)
		case sse:
			text := sc.Text()
			if id, ok := strings.CutPrefix(text, "id: "); ok {
				sseID = id
			}
			data, ok := strings.CutPrefix(text, "data: ")
			if !ok {
				continue
			}
			require.NoError(t, json.Unmarshal([]byte(data), &ev), data)
			require.Equal(t, sseID, ev["id"], "the SSE id is the event id")
		}
		out = append(out, ev)
		if stop != nil && stop(ev) {
			return out
		}
	}
	return out
}

// TestWatchWithAuth watches a running job over NDJSON and SSE with each
// kind of credential the API accepts, disconnects halfway and resumes:
// together the two parts hold every event once, with no snapshot on
// resume. Missing or foreign credentials are refused as on any call.
func TestWatchWithAuth(t *testing.T) {
	t.Parallel()
	s := setupSecure(t, api.Limits{}, 0)
	s.stack.startWorker(t, nil)
	readerJWT := s.signJWT(jwt.MapClaims{"iss": testIssuer, "aud": testAudience, "tenant": "acme", "sub": "dashboard",
		"scope": "jobs.read", "exp": time.Now().Add(time.Hour).Unix()}, jwt.SigningMethodRS256)

	creds := []struct{ name, token string }{
		{"API key", s.tokens["acme-reader"]},
		{"JWT", readerJWT},
	}
	for _, f := range []watchFormat{ndjson, sse} {
		for _, c := range creds {
			t.Run(string(f)+" with "+c.name+" and resume", func(t *testing.T) {
				t.Parallel()
				job := s.rest(t, restReq{path: "/v1/jobs",
					body: `{"type":"report","payload":{"title":"t","pages":4,"page_millis":150},"scheduleDelay":"0.3s"}`})
				require.Equal(t, http.StatusOK, job.code, "%v", job.body)
				name := job.body["name"].(string)

				progress := 0
				part1 := readWatch(t, f, s.openWatch(t, f, name, c.token, ""), func(ev map[string]any) bool {
					if ev["kind"] == "PROGRESS" {
						progress++
					}
					return progress == 2
				})
				require.Equal(t, "SNAPSHOT", part1[0]["kind"])
				part2 := readWatch(t, f, s.openWatch(t, f, name, c.token, part1[len(part1)-1]["id"].(string)), nil)
				require.NotEmpty(t, part2)
				require.NotEqual(t, "SNAPSHOT", part2[0]["kind"], "a resumed watch sends no snapshot")

				seen := map[string]bool{}
				var pcts []float64
				for _, ev := range append(part1, part2...) {
					id := ev["id"].(string)
					require.False(t, seen[id], "event %s sent twice", id)
					seen[id] = true
					if ev["kind"] == "PROGRESS" {
						pcts = append(pcts, ev["progress"].(map[string]any)["percent"].(float64))
					}
				}
				require.Equal(t, []float64{25, 50, 75, 100}, pcts, "no gaps across the resume")
				last := part2[len(part2)-1]
				require.Equal(t, "STATE_CHANGED", last["kind"])
				require.Equal(t, "SUCCEEDED", last["state"])
			})
		}
	}

	refused := []struct {
		name     string
		token    string
		wantCode int
	}{
		{"no credentials", "", http.StatusUnauthorized},
		{"unknown key", "jfk_acme-admin.not-the-secret", http.StatusUnauthorized},
		{"another tenant's key", s.tokens["globex-admin"], http.StatusNotFound},
	}
	job := s.rest(t, restReq{path: "/v1/jobs", body: `{"type":"simulate","scheduleDelay":"3600s"}`})
	require.Equal(t, http.StatusOK, job.code, "%v", job.body)
	for _, f := range []watchFormat{ndjson, sse} {
		for _, tt := range refused {
			t.Run(string(f)+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				resp := s.openWatch(t, f, job.body["name"].(string), tt.token, "")
				require.Equal(t, tt.wantCode, resp.StatusCode)
				require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
				if tt.wantCode == http.StatusUnauthorized {
					require.Equal(t, `Bearer realm="jobforge"`, resp.Header.Get("WWW-Authenticate"))
				}
			})
		}
	}

	// Refusals at once, as on a busy server: a refusal that ends the call
	// before the gateway hands the request over is still the refusal, never
	// a 500 (TestInprocRefusalBeforeRequest makes that case certain). The
	// contract check validates each body against the OpenAPI document.
	t.Run("refusals in parallel", func(t *testing.T) {
		t.Parallel()
		type result struct {
			want        int
			code        int
			contentType string
			challenge   string
			body        string
			err         error
		}
		results := make([]result, 64)
		var wg sync.WaitGroup
		for i := range results {
			f, tt := []watchFormat{ndjson, sse}[i%2], refused[i/2%len(refused)]
			req, err := http.NewRequest(http.MethodGet, s.baseURL+"/v1/"+job.body["name"].(string)+":watch", nil)
			require.NoError(t, err)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			if f == sse {
				req.Header.Set("Accept", "text/event-stream")
			}
			wg.Go(func() {
				r := &results[i]
				r.want = tt.wantCode
				resp, err := http.DefaultClient.Do(req)
				if r.err = err; err != nil {
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				r.code, r.body, r.err = resp.StatusCode, string(b), err
				r.contentType, r.challenge = resp.Header.Get("Content-Type"), resp.Header.Get("WWW-Authenticate")
			})
		}
		wg.Wait()
		for i, r := range results {
			require.NoError(t, r.err, "request %d", i)
			require.Equal(t, r.want, r.code, "request %d: %s", i, r.body)
			require.Equal(t, "application/json", r.contentType, "request %d", i)
			if r.want == http.StatusUnauthorized {
				require.Equal(t, `Bearer realm="jobforge"`, r.challenge, "request %d", i)
			}
		}
	})
}
