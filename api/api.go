// Package api holds jobforge's API definition: the protobuf sources under
// proto/ and the code generated from them under gen/ (committed; regenerate
// with `make proto`).
package api

import _ "embed"

// OpenAPI is the generated OpenAPI v2 document of the REST gateway.
//
//go:embed gen/openapi/jobforge.swagger.json
var OpenAPI []byte
