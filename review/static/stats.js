// The statistics page: the figures of /api/stats.
"use strict";

function percent(value) {
  return value === null ? "–" : `${(100 * value).toFixed(2)}%`;
}

(async () => {
  const stats = await (await api("/api/stats")).json();
  const set = (id, text) => (document.getElementById(id).textContent = text);
  set("pending", `${stats.pending} (${stats.pending_by_kind.review}, ${stats.pending_by_kind.audit})`);
  set("decided", stats.decided);
  set("median", stats.median_seconds ?? "–");
  set("checked", stats.audit.checked);
  set("wrong", stats.audit.wrong);
  const ci = stats.audit.ci95;
  set("rate", `${percent(stats.audit.error_rate)}` + (ci ? ` (${percent(ci[0])} to ${percent(ci[1])})` : ""));
  const rows = Object.entries(stats.per_reviewer).map(([name, count]) => {
    const row = document.createElement("tr");
    const who = document.createElement("th");
    who.textContent = name;
    const many = document.createElement("td");
    many.textContent = count;
    row.append(who, many);
    return row;
  });
  document.getElementById("reviewers").replaceChildren(...rows);
})();
