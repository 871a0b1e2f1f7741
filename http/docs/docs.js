// Starts Swagger UI on this gateway's OpenAPI document. A file of its own, not an inline script, so
// that the page's Content-Security-Policy can refuse inline scripts; loaded with `defer` after the
// bundle, it runs once the page is parsed.
window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  // An operation opens from the URL's fragment, so a link can point at one.
  deepLinking: true,
  // The default validator badge would send the document's address to validator.swagger.io.
  validatorUrl: null,
  // The key given to Authorize stays in this page's memory, never in localStorage.
  persistAuthorization: false,
  // ?url= and ?config= must not make this page load another document.
  queryConfigEnabled: false,
  displayRequestDuration: true,
});
