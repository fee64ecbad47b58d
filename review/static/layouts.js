// The layout designer: fields drawn on a form's sample by mouse or keyboard, tried by the workers, saved.
// Regions are fractions of the sample, as layout files hold them; each field is sent as its [[fields]]
// entry (comb / max_digits / digits), and everything the server says back is shown as text.
"use strict";

const STEP = 0.005; // what an arrow key moves or resizes a field by, as a share of the sample
const NEW_REGION = [0.1, 0.1, 0.2, 0.06]; // where N puts a new field: left, top, width, height
const SMALLEST = 0.01; // a field drawn by mouse smaller than this (either way) is taken for a click

const state = { sample: null, fields: [], selected: -1, readings: {} };
const $ = (id) => document.getElementById(id);
const sheet = $("sheet");

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function fitted([left, top, width, height]) {
  // Inside the sample, and never smaller than one step.
  width = clamp(width, STEP, 1);
  height = clamp(height, STEP, 1);
  return [clamp(left, 0, 1 - width), clamp(top, 0, 1 - height), width, height].map((v) => Math.round(v * 1e5) / 1e5);
}

function entry(field) {
  // The field as a layout file's [[fields]] entry.
  const out = { name: field.name, region: field.region };
  const count = parseInt(field.count, 10);
  if (field.kind === "single") out.digits = 1;
  else if (field.kind === "comb") {
    out.comb = count;
    if (field.full) out.digits = count;
  } else if (count > 0) out[field.full ? "digits" : "max_digits"] = count;
  if (field.printed) out.printed = field.printed;
  return out;
}

function fromEntry(e) {
  if (e.comb) return { name: e.name, region: e.region, kind: "comb", count: e.comb, full: e.digits === e.comb, printed: e.printed };
  if (e.digits === 1) return { name: e.name, region: e.region, kind: "single", count: 1, full: true, printed: e.printed };
  const count = e.digits || e.max_digits || "";
  return { name: e.name, region: e.region, kind: "line", count, full: Boolean(e.digits), printed: e.printed };
}

function freeName() {
  const taken = new Set(state.fields.map((f) => f.name));
  let n = state.fields.length + 1;
  while (taken.has(`field${n}`)) n += 1;
  return `field${n}`;
}

async function answer(response) {
  // The JSON of an answer; for an error, says what the server said and returns null.
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(body.error || `the station answered ${response.status}`);
    return null;
  }
  return body;
}

// Drawing: every field is a box over the picture, placed in percentages of it.

function draw() {
  sheet.querySelectorAll(".box").forEach((box) => box.remove());
  state.fields.forEach((field, index) => {
    const box = document.createElement("div");
    box.className = index === state.selected ? "box selected" : "box";
    box.dataset.index = index;
    const [left, top, width, height] = field.region;
    Object.assign(box.style, { left: `${left * 100}%`, top: `${top * 100}%`, width: `${width * 100}%`, height: `${height * 100}%` });
    const label = document.createElement("span");
    const reading = state.readings[field.name];
    label.className = reading ? `label ${reading.status}` : "label";
    label.textContent = reading ? `${field.name}: ${reading.digits || "–"} · ${reading.confidence} · ${reading.status}` : field.name;
    const grip = document.createElement("span");
    grip.className = "grip";
    box.append(label, grip);
    sheet.append(box);
  });
  const list = state.fields.map((field, index) => {
    const item = document.createElement("li");
    item.className = index === state.selected ? "selected" : "";
    item.textContent = `${field.name} (${describe(field)}) at ${field.region.map((v) => v.toFixed(3)).join(", ")}`;
    return item;
  });
  $("fields").replaceChildren(...list);
  showPanel();
}

function describe(field) {
  if (field.kind === "single") return "a single digit";
  if (field.kind === "comb") return `comb of ${field.count}${field.full ? ", every box filled" : ""}`;
  return field.count ? `${field.full ? "exactly" : "at most"} ${field.count} digits` : "digits";
}

function showPanel() {
  const field = state.fields[state.selected];
  $("field-panel").disabled = !field;
  if (!field) return;
  $("field-name").value = field.name;
  $("field-kind").value = field.kind;
  $("field-count").value = field.count;
  $("field-full").checked = field.full;
  $("count-label").hidden = field.kind === "single";
  $("full-label").hidden = field.kind === "single";
  $("count-name").textContent = field.kind === "comb" ? "Boxes" : "Digits (at most, or exactly)";
  $("full-name").textContent = field.kind === "comb" ? "every box filled" : "always this many";
}

function select(index) {
  state.selected = state.fields.length ? (index + state.fields.length) % state.fields.length : -1;
  draw();
}

function add(region) {
  state.fields.push({ name: freeName(), region: fitted(region), kind: "line", count: 10, full: false });
  select(state.fields.length - 1);
}

function changed(field, update) {
  Object.assign(field, update);
  delete state.readings[field.name]; // a field moved or changed was not read so
  draw();
}

// The keyboard, on the picture.

sheet.addEventListener("keydown", (event) => {
  const field = state.fields[state.selected];
  const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  if (event.key === "n" || event.key === "N") add(NEW_REGION);
  else if (event.key === "]") select(state.selected + 1);
  else if (event.key === "[") select(state.selected - 1);
  else if (field && moves[event.key]) {
    const [dx, dy] = moves[event.key].map((v) => v * STEP);
    const [left, top, width, height] = field.region;
    const region = event.shiftKey ? [left, top, width + dx, height + dy] : [left + dx, top + dy, width, height];
    changed(field, { region: fitted(region) });
  } else if (field && (event.key === "Delete" || event.key === "Backspace")) {
    state.fields.splice(state.selected, 1);
    select(Math.min(state.selected, state.fields.length - 1));
  } else if (field && event.key === "Enter") $("field-name").focus();
  else return;
  event.preventDefault();
});

document.querySelector(".panel").addEventListener("keydown", (event) => {
  if (event.key === "Escape") sheet.focus();
});

// The mouse (or a pen): drag on the picture to draw, a box to move it, its corner to resize it.

let drag = null;

function at(event) {
  const frame = sheet.getBoundingClientRect();
  return [clamp((event.clientX - frame.left) / frame.width, 0, 1), clamp((event.clientY - frame.top) / frame.height, 0, 1)];
}

sheet.addEventListener("pointerdown", (event) => {
  if (!state.sample || event.button !== 0) return;
  const [x, y] = at(event);
  const box = event.target.closest(".box");
  if (box) {
    select(Number(box.dataset.index));
    const field = state.fields[state.selected];
    drag = { field, from: [x, y], region: field.region.slice(), resize: event.target.classList.contains("grip") };
  } else {
    add([x, y, STEP, STEP]);
    drag = { field: state.fields[state.selected], from: [x, y], region: [x, y, 0, 0], resize: true, drawn: true };
  }
  sheet.setPointerCapture(event.pointerId);
  sheet.focus();
  event.preventDefault();
});

sheet.addEventListener("pointermove", (event) => {
  if (!drag) return;
  const [x, y] = at(event);
  const [dx, dy] = [x - drag.from[0], y - drag.from[1]];
  const [left, top, width, height] = drag.region;
  let region;
  if (drag.drawn) region = [Math.min(x, drag.from[0]), Math.min(y, drag.from[1]), Math.abs(dx), Math.abs(dy)];
  else if (drag.resize) region = [left, top, width + dx, height + dy];
  else region = [left + dx, top + dy, width, height];
  changed(drag.field, { region: fitted(region) });
});

sheet.addEventListener("pointerup", () => {
  if (drag && drag.drawn && (drag.field.region[2] < SMALLEST || drag.field.region[3] < SMALLEST)) {
    state.fields.splice(state.fields.indexOf(drag.field), 1); // a click, not a field
    select(state.fields.length - 1);
  }
  drag = null;
});

// The panel: the selected field's name and kind.

$("field-name").addEventListener("input", (event) => changed(state.fields[state.selected], { name: event.target.value.trim() }));
$("field-kind").addEventListener("change", (event) => {
  const kind = event.target.value;
  const field = state.fields[state.selected];
  changed(field, { kind, count: kind === "single" ? 1 : field.count || 3 });
});
$("field-count").addEventListener("input", (event) => changed(state.fields[state.selected], { count: event.target.value }));
$("field-full").addEventListener("change", (event) => changed(state.fields[state.selected], { full: event.target.checked }));

// A sample: uploaded, or a saved layout's reference opened again.

function start(sample) {
  state.sample = sample.sample;
  state.readings = {};
  $("sample").src = sample.image;
  $("board").hidden = false;
  $("readings").replaceChildren();
  select(state.fields.length - 1);
  sheet.focus();
}

$("sample-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  say(`${file.name}: the workers are reading it…`);
  const response = await fetch("/api/samples", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": file.type || "application/octet-stream", "X-CSRF-Token": CSRF, "X-Sample-Name": encodeURIComponent(file.name) },
    body: file,
  });
  const sample = await answer(response);
  if (!sample) return;
  state.fields = [];
  say(`${file.name}: ${sample.width} × ${sample.height} pixels. Draw its fields.`);
  start(sample);
});

$("open").addEventListener("click", async () => {
  const name = $("saved").value;
  if (!name) return;
  say(`${name}: opening its reference image…`);
  const opened = await answer(await api(`/api/layouts/${encodeURIComponent(name)}/open`, "POST", {}));
  if (!opened) return;
  state.fields = opened.fields.map(fromEntry);
  $("layout-name").value = opened.name;
  $("description").value = opened.description;
  say(`${name}: ${opened.fields.length} field(s). Saving it again keeps this one as a version.`);
  start(opened);
});

async function listSaved() {
  const listed = await answer(await api("/api/layouts"));
  if (!listed) return;
  const options = listed.layouts.map((layout) => {
    const option = document.createElement("option");
    option.value = layout.name;
    const kept = layout.versions && layout.versions.length ? `, ${layout.versions.length} earlier version(s)` : "";
    option.textContent = layout.error ? `${layout.name} (cannot be read)` : `${layout.name}${layout.reference ? "" : " (no reference image)"}${kept}`;
    return option;
  });
  const none = document.createElement("option");
  none.value = "";
  none.textContent = "–";
  $("saved").replaceChildren(none, ...options);
}

// Trying and saving.

$("try").addEventListener("click", async () => {
  if (!state.sample) return;
  say("the workers are reading the sample with these fields…");
  const tried = await answer(await api(`/api/samples/${state.sample}/try`, "POST", { fields: state.fields.map(entry) }));
  if (!tried) return;
  state.readings = Object.fromEntries(tried.rows.map((row) => [row.field, row]));
  const head = document.createElement("tr");
  for (const title of ["field", "read", "confidence", "status"]) {
    const cell = document.createElement("th");
    cell.textContent = title;
    head.append(cell);
  }
  const rows = tried.rows.map((row) => {
    const line = document.createElement("tr");
    line.dataset.field = row.field;
    for (const value of [row.field, row.digits, row.confidence, row.status]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      line.append(cell);
    }
    line.title = row.error;
    return line;
  });
  $("readings").replaceChildren(head, ...rows);
  say(`read: ${tried.rows.filter((row) => row.status === "ok").length} of ${tried.rows.length} field(s) ok`);
  draw();
});

$("save").addEventListener("click", async () => {
  const name = $("layout-name").value.trim();
  if (!state.sample || !name) {
    say("give the layout a name first");
    $("layout-name").focus();
    return;
  }
  const body = { sample: state.sample, description: $("description").value, fields: state.fields.map(entry) };
  const saved = await answer(await api(`/api/layouts/${encodeURIComponent(name)}`, "POST", body));
  if (!saved) return;
  say(`saved ${saved.name}, version ${saved.version}: scans dropped into ${saved.inbox} are read with it`);
  listSaved();
});

listSaved();
