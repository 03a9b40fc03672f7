package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDocument describes Flightdeck's REST API. It is the source the
// server types (package apigen) and the CI client (package apiclient) are
// generated from, and the server hands it out as it is, so tools always see
// the description of the API they talk to.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPIDocument returns the OpenAPI document the server serves.
func OpenAPIDocument() []byte {
	return append([]byte(nil), openAPIDocument...)
}

// serveOpenAPIDocument handles GET /api/v1/openapi.yaml. It needs no token,
// so tools can discover the API before they have one.
func serveOpenAPIDocument(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPIDocument)
}
