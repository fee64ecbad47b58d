// Single digits the machine read alike, side by side: the odd one stands out. Arrows move,
// Space marks a wrong one, Enter confirms the others and sends the wrong ones back to be keyed.
"use strict";

let cells = [];
let at = 0;

function columns() {
  const grid = document.getElementById("grid");
  return Math.max(1, Math.round(grid.clientWidth / (cells[0]?.offsetWidth || 1)));
}

function focusOn(index) {
  if (!cells.length) return;
  at = Math.max(0, Math.min(cells.length - 1, index));
  cells[at].focus();
}

async function load() {
  const response = await api("/api/group");
  const group = await response.json();
  const grid = document.getElementById("grid");
  document.getElementById("digit").textContent = group.digit ?? "?";
  cells = group.items.map((item) => {
    const cell = document.createElement("figure");
    cell.tabIndex = 0;
    cell.dataset.id = item.id;
    const picture = document.createElement("img");
    picture.src = item.image;
    picture.alt = `read as ${item.digits}`;
    const caption = document.createElement("figcaption");
    caption.textContent = item.source;
    cell.append(picture, caption);
    return cell;
  });
  grid.replaceChildren(...cells);
  document.getElementById("empty").hidden = cells.length > 0;
  focusOn(0);
}

document.addEventListener("keydown", async (event) => {
  if (!cells.length) return;
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() };
  if (event.key in moves) {
    event.preventDefault();
    focusOn(at + moves[event.key]);
  } else if (event.key === " ") {
    event.preventDefault();
    cells[at].classList.toggle("wrong");
  } else if (event.key === "Enter") {
    event.preventDefault();
    const wrong = cells.filter((cell) => cell.classList.contains("wrong")).map((cell) => cell.dataset.id);
    const confirm = cells.filter((cell) => !cell.classList.contains("wrong")).map((cell) => cell.dataset.id);
    const response = await api("/api/group", "POST", { confirm, wrong });
    const answer = await response.json();
    say(
      response.ok
        ? `${answer.confirmed} confirmed, ${answer.returned} sent back to be keyed alone (Items, I)`
        : answer.error,
    );
    await load();
  }
});

load();
