package api

import (
	"net/http"

	"github.com/swaggest/swgui"
	"github.com/swaggest/swgui/v5emb"
)

// docsPath serves the interactive API reference.
const docsPath = "/docs"

// docsHandler serves Swagger UI (its assets embedded from the swgui
// module) on the generated OpenAPI document at /openapi.json. Requests
// made from the page's "Try it out" go to this server's REST API.
func docsHandler() http.Handler {
	return v5emb.NewHandlerWithConfig(swgui.Config{
		Title:       "jobforge API",
		SwaggerJSON: "/openapi.json",
		BasePath:    docsPath + "/",
		SettingsUI: map[string]string{
			"defaultModelsExpandDepth": "1", // show the message schemas
			"docExpansion":             `"list"`,
			"tryItOutEnabled":          "false",
		},
	})
}
