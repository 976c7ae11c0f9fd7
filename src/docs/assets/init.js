// Starts Swagger UI on this server's OpenAPI document. A file of its own, not an inline
// script, so the page's policy can keep scripts to 'self'.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  // The validator badge would send the document to validator.swagger.io: nothing leaves.
  validatorUrl: null,
  // Tokens given under Authorize live in the page's memory only, never in localStorage.
  persistAuthorization: false,
  deepLinking: true,
  docExpansion: "list",
  defaultModelsExpandDepth: 0,
  displayRequestDuration: true,
  filter: true,
  tryItOutEnabled: false,
});
