package api

import (
	"net/http"

	"github.com/jobforge/jobforge/internal/auth"
)

// monitoringPath is where the queue UI is mounted.
const monitoringPath = "/monitoring"

// mountOperability adds the human-facing pages to the public mux: the API
// reference at /docs and, when configured, the queue UI at /monitoring.
// Metrics, health details and pprof are not here: they live on the admin
// port (see internal/telemetry).
func (s *Server) mountOperability(mux *http.ServeMux, obs *observability) {
	docs := obs.instrumentHTTP("docs", docsHandler())
	mux.Handle("GET "+docsPath, docs)
	mux.Handle("GET "+docsPath+"/", docs)
	if s.opts.Monitoring == nil {
		return
	}
	mon := obs.instrumentHTTP("monitoring", requireAdmin(s.opts.Auth, s.opts.Monitoring))
	mux.Handle(monitoringPath+"/", mon)
	mux.Handle("GET "+monitoringPath, http.RedirectHandler(monitoringPath+"/", http.StatusMovedPermanently))
}

// requireAdmin lets only callers with the admin scope through, when
// authentication is on. Browsers cannot attach a bearer token to a page
// load, so the token is also accepted as the password of HTTP Basic
// authentication (any user name), which the browser then sends with the
// UI's own requests.
func requireAdmin(a *auth.Authenticator, h http.Handler) http.Handler {
	if a == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header := r.Header.Get("Authorization")
		if _, token, ok := r.BasicAuth(); ok {
			header = "Bearer " + token
		}
		p, err := a.Authenticate(r.Context(), header)
		switch {
		case err != nil:
			w.Header().Set("WWW-Authenticate", `Basic realm="jobforge monitoring", charset="UTF-8"`)
			http.Error(w, "authentication required: an API key with the admin scope\n", http.StatusUnauthorized)
		case !p.Allows(auth.ScopeAdmin):
			http.Error(w, "the admin scope is required\n", http.StatusForbidden)
		default:
			h.ServeHTTP(w, r)
		}
	})
}
