// Berth's API reference: Swagger UI over the api's own OpenAPI document (no validator badge: it would ask
// a server elsewhere; no deep links: Swagger UI puts them as links inside the buttons that open an
// operation, which keyboards and screen readers cannot tell apart).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    layout: "BaseLayout",
    deepLinking: false,
    displayOperationId: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
