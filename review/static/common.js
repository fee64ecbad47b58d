// Shared by the station's pages: calls to the JSON API with the session's CSRF token, logging out,
// and the keys that reach each page (I items, G group, T statistics, L layouts for admins), shown in
// the header. Inside an element marked data-own-keys (the layout designer) keys are that page's own.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]')?.content || "";

async function api(path, method = "GET", body = undefined) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.reload(); // the session ended: the page shows the login
  }
  return response;
}

function say(text) {
  document.getElementById("message").textContent = text;
}

document.getElementById("logout")?.addEventListener("click", async () => {
  await api("/api/logout", "POST", {});
  window.location.assign("/");
});

const PAGES = { i: "/", g: "/group", t: "/stats" };
if (document.getElementById("layouts-link")) PAGES.l = "/layouts";

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target.closest && event.target.closest("[data-own-keys]")) return;
  const page = PAGES[event.key.toLowerCase()];
  if (page === undefined) return;
  event.preventDefault();
  if (window.location.pathname !== page) window.location.assign(page);
});
