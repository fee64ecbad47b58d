// The login form: posts the name and password as JSON, then shows the station.
"use strict";

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const message = document.getElementById("message");
  message.textContent = "";
  const response = await fetch("/api/login", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    }),
  });
  if (response.ok) {
    window.location.reload();
  } else {
    const answer = await response.json().catch(() => ({}));
    message.textContent = response.status === 429 ? answer.error : "Wrong name or password.";
    document.getElementById("password").select();
  }
});
