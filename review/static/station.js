// Keying one item at a time, by keyboard alone: type over the digits, Enter accepts,
// S skips, U marks unreadable, Z undoes the last decision (as far back as UNDO_DEPTH).
// Letters other than these change page (common.js) and are never typed.
"use strict";

const UNDO_DEPTH = 50;
const decided = []; // ids of this page's decisions, newest last
let current = null;
let busy = false;

const input = document.getElementById("digits");

function tint(confidence) {
  // Sure digits stay pale; doubtful ones turn orange, then red.
  const doubt = Math.min(1, Math.max(0, (1 - confidence) * 4));
  return `hsl(${Math.round(50 - 50 * doubt)}, 90%, ${Math.round(92 - 30 * doubt)}%)`;
}

function show(item, left) {
  current = item;
  document.getElementById("empty").hidden = true;
  document.getElementById("item").hidden = false;
  document.getElementById("kind").textContent = item.kind === "audit" ? "audit: key what you see" : "review";
  document.getElementById("kind").className = `kind ${item.kind}`;
  document.getElementById("source").textContent = item.source;
  document.getElementById("page").textContent = item.page;
  document.getElementById("field").textContent = item.field;
  document.getElementById("reason").textContent = item.reason ? `why: ${item.reason}` : "";
  document.getElementById("crop").src = item.image;
  document.getElementById("page-image").src = item.page_image;
  const strip = document.getElementById("tint");
  strip.replaceChildren(
    ...(item.digits || "").split("").map((digit, i) => {
      const cell = document.createElement("span");
      cell.textContent = digit;
      cell.style.background = tint(item.confidences[i]);
      cell.title = `confidence ${item.confidences[i].toFixed(2)}`;
      return cell;
    }),
  );
  input.value = item.digits || "";
  input.focus();
  input.select(); // typing replaces the machine's digits
  if (left !== undefined) document.getElementById("left").textContent = left;
}

function nothingLeft() {
  current = null;
  document.getElementById("item").hidden = true;
  document.getElementById("empty").hidden = false;
  document.getElementById("left").textContent = "0";
  input.blur();
  document.body.focus();
}

async function next() {
  const response = await api("/api/next");
  if (response.status === 204) return nothingLeft();
  const item = await response.json();
  show(item, item.left);
}

async function act(path, body, then) {
  if (busy || !current) return;
  busy = true;
  try {
    const response = await api(path, "POST", body);
    const answer = await response.json();
    if (!response.ok) {
      say(answer.error || `the station answered ${response.status}`);
      if (response.status === 409) await next();
      return;
    }
    say("");
    await then(answer);
  } finally {
    busy = false;
  }
}

function decide(body) {
  const id = current.id;
  return act(`/api/items/${id}`, body, async (answer) => {
    decided.push(id);
    if (decided.length > UNDO_DEPTH) decided.shift();
    document.getElementById("decided").textContent = decided.length;
    say(`${answer.verdict}`);
    await next();
  });
}

async function undo() {
  if (busy || !decided.length) return;
  busy = true;
  try {
    const id = decided.pop();
    const response = await api(`/api/items/${id}/undo`, "POST", {});
    const answer = await response.json();
    if (!response.ok) return say(answer.error || "cannot undo");
    document.getElementById("decided").textContent = decided.length;
    say("undone: decide it again");
    show(answer, answer.left);
  } finally {
    busy = false;
  }
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  if (key === "z") {
    event.preventDefault();
    return void undo();
  }
  if (!current) return;
  if (key === "enter") {
    event.preventDefault();
    if (!/^[0-9]+$/.test(input.value)) return say("type the digits, or U if none can be read");
    return void decide({ digits: input.value });
  }
  if (key === "s") {
    event.preventDefault();
    return void act(`/api/items/${current.id}/skip`, {}, async () => {
      say("skipped: it waits behind the others");
      await next();
    });
  }
  if (key === "u") {
    event.preventDefault();
    return void decide({ unreadable: true });
  }
  if (event.key.length === 1 && !/[0-9]/.test(event.key)) event.preventDefault(); // only digits are typed
});

next();
