// The live view: rows and the status bar arrive as server-rendered HTML over server-sent events.
"use strict";
(() => {
  const rows = document.getElementById("rows");
  const status = document.getElementById("status");
  const connection = document.getElementById("connection");
  const empty = document.getElementById("empty");
  const keep = Number(rows.dataset.keep) || 200;

  function fragment(html) {
    const template = document.createElement("template");
    template.innerHTML = html;
    return Array.from(template.content.querySelectorAll("tr"));
  }

  function place(html) {
    for (const row of fragment(html).reverse()) {
      const old = document.getElementById(row.id);
      if (old) old.replaceWith(row); else rows.prepend(row);
    }
    while (rows.children.length > keep) rows.lastElementChild.remove();
    empty.hidden = rows.children.length > 0;
  }

  rows.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a")) window.location.href = row.dataset.href;
  });

  const source = new EventSource("/ui/events");
  source.addEventListener("reset", (event) => { rows.replaceChildren(...fragment(event.data)); place(""); });
  source.addEventListener("request", (event) => place(event.data));
  source.addEventListener("status", (event) => { status.innerHTML = event.data; });
  source.addEventListener("open", () => { connection.textContent = "live"; });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {  // refused (a restarted server forgot the session): log in again
      connection.textContent = "disconnected";
      window.setTimeout(() => window.location.reload(), 3000);
    } else {
      connection.textContent = "reconnecting…";
    }
  });
})();
