// Starts Swagger UI on /docs (a file, not an inline script, so the page's CSP needs no
// 'unsafe-inline'). The API description is fetched first: when it needs a key
// (PASEO_GATEWAY_PUBLIC_DOCS=false), a form asks for one, and Swagger UI is then authorized
// with it, so "Try it out" sends it too. The key stays in this page's memory only.
"use strict";

(function () {
  const SPEC_URL = "openapi.json";
  const form = document.getElementById("docs-key-form");
  const input = document.getElementById("docs-key");
  const error = document.getElementById("docs-key-error");

  function show(spec, key) {
    form.hidden = true;
    const ui = window.SwaggerUIBundle({
      spec: spec,
      dom_id: "#swagger-ui",
      layout: "BaseLayout",
      deepLinking: true,
      showExtensions: true,
      showCommonExtensions: true,
      validatorUrl: null,
      presets: [window.SwaggerUIBundle.presets.apis],
    });
    if (key) {
      ui.preauthorizeApiKey("HTTPBearer", key);
    }
  }

  async function load(key) {
    const headers = { Accept: "application/json" };
    if (key) {
      headers.Authorization = "Bearer " + key;
    }
    const response = await fetch(SPEC_URL, { headers: headers, credentials: "omit" });
    if (response.ok) {
      show(await response.json(), key);
      return;
    }
    form.hidden = false;
    if (response.status === 401 || response.status === 403) {
      error.textContent = key ? "That key was refused." : "";
    } else {
      error.textContent = "Could not load the API description (HTTP " + response.status + ").";
    }
    error.hidden = !error.textContent;
    input.focus();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const key = input.value.trim();
    if (key) {
      load(key).catch(function (exc) {
        error.textContent = "Could not load the API description: " + exc;
        error.hidden = false;
      });
    }
  });

  load(null).catch(function (exc) {
    form.hidden = false;
    error.textContent = "Could not load the API description: " + exc;
    error.hidden = false;
  });
})();
