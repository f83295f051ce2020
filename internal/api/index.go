package api

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
)

// link is one entry of the index at /.
type link struct {
	Rel   string `json:"rel"`
	Href  string `json:"href"`
	Title string `json:"title"`
}

// indexLinks are the entry points of the HTTP port; the queue UI only when
// it is mounted.
func (s *Server) indexLinks() []link {
	links := []link{
		{"docs", docsPath, "API reference (Swagger UI)"},
		{"openapi", "/openapi.json", "OpenAPI document"},
		{"job-types", "/v1/jobTypes", "Job types and their payload schemas (needs a key)"},
		{"jobs", "/v1/jobs", "Jobs, newest first (needs a key)"},
		{"health", "/healthz", "Liveness"},
		{"ready", "/readyz", "Readiness (Redis reachable)"},
	}
	if s.opts.Monitoring != nil {
		links = append(links, link{"monitoring", monitoringPath + "/", "Queue UI (HTTP Basic: any user, an admin key as password)"})
	}
	return links
}

// indexPage is the HTML form of the index, for browsers.
var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>jobforge</title></head>
<body>
<h1>jobforge</h1>
<p>A background job service: submit jobs over REST (here, under <code>/v1/</code>) or gRPC, watch them, cancel them.
API calls take <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<ul>
{{range .}}<li><a href="{{.Href}}">{{.Href}}</a>: {{.Title}}</li>
{{end}}</ul>
</body></html>
`))

// index answers / with the entry points of this port: HTML for browsers,
// JSON for everyone else.
func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	links := s.indexLinks()
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = indexPage.Execute(w, links)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(map[string]any{
		"name":        "jobforge",
		"description": "Background job service. REST under /v1/ (Authorization: Bearer <key>), gRPC on the gRPC port.",
		"links":       links,
	})
}
