// The dashboard's script (emulator/ui.lua serves it from the binary; docs/emulator.md, "The
// dashboard"). It polls the JSON under /_emulator/ui/data/ once a second while the tab is
// visible and updates the page in place: rows are kept by key and a text is written only
// when it changed, so nothing is rebuilt and nothing flickers. Every text from the
// emulator goes into the page with textContent, never as HTML. A job's input, metadata and
// output are fetched as their stored text and indented here without being parsed, so a
// number is shown exactly as stored (JavaScript's numbers would round some).
"use strict";

(function () {
  const POLL_MS = 1000;
  const MAX_PRETTY = 1000000;   // characters of a text indented; longer ones are cut
  const MAX_INDENT = 64;        // levels indented; deeper ones are not indented further
  const MAX_PRETTY_OUT = 4000000;   // characters indented; a text that would give more is shown as stored
  const PAGE = 50;              // jobs on a page
  const STATUSES = ["pending", "running", "succeeded", "failed", "cancelled"];
  const $ = (id) => document.getElementById(id);

  // The view, from the location's hash: #queue=ORG/PROJECT/QUEUE&status=S&job=ID
  let view = { queue: "", status: "", job: "", before: "" };
  let texts = {};   // part -> the update_time its text was fetched for
  let timer = null;

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    view = { queue: p.get("queue") || "", status: p.get("status") || "",
      job: p.get("job") || "", before: p.get("before") || "" };
  }

  function hashOf(v) {
    const p = new URLSearchParams();
    if (v.queue) p.set("queue", v.queue);
    if (v.status) p.set("status", v.status);
    if (v.before) p.set("before", v.before);
    if (v.job) p.set("job", v.job);
    return "#" + p.toString();
  }

  function go(change) {
    location.hash = hashOf(Object.assign({}, view, change));
  }

  // ---- DOM helpers: in place, text only --------------------------------------------------

  function setText(el, s) {
    s = s === undefined || s === null ? "" : String(s);
    if (el.textContent !== s) el.textContent = s;
  }

  function setClass(el, c) {
    if (el.className !== c) el.className = c;
  }

  function show(el, on) {
    if (el.hidden === on) el.hidden = !on;
  }

  function cell(tr, i, cls) {
    while (tr.cells.length <= i) tr.insertCell();
    const td = tr.cells[i];
    if (cls !== undefined) setClass(td, cls);
    return td;
  }

  // A link cell: the anchor made once, its text and href kept up to date.
  function linkCell(tr, i, text, href, cls) {
    const td = cell(tr, i, cls);
    let a = td.firstChild;
    if (!a || a.nodeName !== "A") {
      td.textContent = "";
      a = td.appendChild(document.createElement("a"));
    }
    setText(a, text);
    if (a.getAttribute("href") !== href) a.setAttribute("href", href);
  }

  // The rows of tbody become one per item, in order, kept by key(item): a row that stays
  // is updated by fill(tr, item), not made again.
  function syncRows(tbody, items, key, fill) {
    const old = new Map();
    for (const tr of Array.from(tbody.rows)) old.set(tr.dataset.key, tr);
    let at = tbody.firstChild;
    for (const item of items) {
      const k = String(key(item));
      let tr = old.get(k);
      if (tr) old.delete(k);
      else {
        tr = document.createElement("tr");
        tr.dataset.key = k;
      }
      fill(tr, item);
      if (tr !== at) tbody.insertBefore(tr, at);
      else at = at.nextSibling;
    }
    for (const tr of old.values()) tr.remove();
  }

  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store", credentials: "same-origin" });
    if (!r.ok) {
      const e = new Error(path + ": " + r.status);
      e.status = r.status;
      e.detail = "";
      try {
        e.detail = String((await r.json()).error || "");
      } catch (_) { /* no JSON: the status says enough */ }
      throw e;
    }
    return r.json();
  }

  const q = encodeURIComponent;

  // ---- JSON text, indented without being parsed --------------------------------------------

  // Indents the JSON text s: whitespace outside strings is dropped and each member and
  // element goes on its own line. Strings, numbers and literals are copied character for
  // character: nothing is converted, so 9999999999999999999 stays as it is.
  // Past MAX_INDENT levels the lines are indented no further (a text may nest to any depth:
  // 20,000 levels fully indented would be over a billion characters); when the indented text
  // would be over MAX_PRETTY_OUT characters, the text is shown as stored (null is returned).
  function pretty(s) {
    const out = [];
    let depth = 0, i = 0, run = 0, size = 0;
    const n = s.length;
    const pads = [];
    for (let k = 0; k <= MAX_INDENT; k++) pads.push("\n" + "  ".repeat(k));
    const put = (t) => { out.push(t); size += t.length; };
    const nl = () => pads[depth < 0 ? 0 : depth > MAX_INDENT ? MAX_INDENT : depth];
    while (i < n) {
      if (size > MAX_PRETTY_OUT) return null;
      const c = s[i];
      if (c === '"') {
        let j = i + 1;
        while (j < n && s[j] !== '"') j += s[j] === "\\" ? 2 : 1;
        put(s.slice(i, j + 1));
        i = j + 1;
        continue;
      }
      if (c === " " || c === "\t" || c === "\n" || c === "\r") { i++; continue; }
      if (c === "{" || c === "[") {
        let j = i + 1;
        while (j < n && " \t\n\r".includes(s[j])) j++;
        if (s[j] === (c === "{" ? "}" : "]")) { put(c + s[j]); i = j + 1; continue; }
        depth++;
        put(c + nl());
      } else if (c === "}" || c === "]") {
        depth--;
        put(nl() + c);
      } else if (c === ",") {
        put("," + nl());
      } else if (c === ":") {
        put(": ");
      } else {
        run = i;
        while (i < n && !' \t\n\r,:]}{["'.includes(s[i])) i++;
        put(s.slice(run, i));
        continue;
      }
      i++;
    }
    return out.join("");
  }

  // ---- queues ---------------------------------------------------------------------------

  function renderQueues(data) {
    const tbody = $("queues").tBodies[0];
    syncRows(tbody, data.queues, (x) => x.name, (tr, x) => {
      linkCell(tr, 0, x.name, hashOf({ queue: x.name }), "mono");
      STATUSES.forEach((s, k) => setText(cell(tr, k + 1, "n c-" + s), x.counts[s]));
      setText(cell(tr, 6, "n length"), x.current_queue_length);
      setText(cell(tr, 7, "workers mono"), x.workers.map((w) =>
        w.url + " × " + w.instances).join(", "));
      setClass(tr, x.name === view.queue ? "selected" : "");
    });
    show($("queues-empty"), data.queues.length === 0);
    setText($("queues-summary"), data.jobs_stored + " jobs stored (at most " + data.max_jobs +
      "); webhook attempts " + data.webhooks.attempts + ", delivered " +
      data.webhooks.delivered + ", failed " + data.webhooks.failed + ", skipped " +
      data.webhooks.skipped + ", dropped " + data.webhooks.dropped +
      (data.more > 0 ? "; " + data.more + " more queues not shown" : ""));
  }

  // ---- jobs of a queue --------------------------------------------------------------------

  let nextBefore = null;

  function renderJobs(data) {
    const tbody = $("jobs").tBodies[0];
    syncRows(tbody, data.items, (j) => j.id, (tr, j) => {
      linkCell(tr, 0, j.id, hashOf(Object.assign({}, view, { job: j.id })), "id");
      const st = cell(tr, 1);
      setText(st, j.status);
      setClass(st, "status s-" + j.status);
      setText(cell(tr, 2, "time"), j.create_time);
      setText(cell(tr, 3, "time"), j.update_time);
      setText(cell(tr, 4, "n"), j.attempts);
      setText(cell(tr, 5, "preview"), j.preview + (j.preview_cut ? "…" : ""));
      setClass(tr, j.id === view.job ? "selected" : "");
    });
    show($("jobs-empty"), data.items.length === 0);
    setText($("jobs-count"), data.matching + (view.status ? " " + view.status : "") +
      (data.matching === 1 ? " job" : " jobs") + (view.before ? " (an older page)" : ""));
    nextBefore = data.next;
    $("older").disabled = data.next === null || data.next === undefined;
    $("newest").disabled = !view.before;
  }

  // ---- one job --------------------------------------------------------------------------

  async function renderText(job, part, size) {
    const pre = $("job-" + part);
    if (size === null || size === undefined) {
      setText(pre, "(none)");
      texts[part] = job.update_time;
      return;
    }
    if (texts[part] === job.update_time) return;
    const r = await fetch("/_emulator/ui/data/text?id=" + q(job.id) + "&part=" + part,
      { cache: "no-store" });
    if (!r.ok) return;
    const s = await r.text();
    let shown;
    if (s.length > MAX_PRETTY) {
      shown = s.slice(0, MAX_PRETTY) + "\n… (" + size + " bytes in all; the whole text: /_emulator/ui/data/text?id=" + job.id + "&part=" + part + ")";
    } else {
      // one text the indenting cannot take is shown as stored; it never blanks the page
      try {
        shown = pretty(s);
      } catch (e) {
        shown = null;
      }
      if (shown === null) shown = s;
    }
    setText(pre, shown);
    texts[part] = job.update_time;
  }

  function statusOrError(a) {
    return a.status !== undefined && a.status !== null ? String(a.status) : "error: " + (a.error || "?");
  }

  function renderDeliveries(list) {
    const box = $("job-deliveries");
    const old = new Map();
    for (const div of Array.from(box.children)) old.set(div.dataset.key, div);
    let at = box.firstChild;
    for (const d of list) {
      let div = old.get(d.id);
      if (div) old.delete(d.id);
      else {
        div = document.createElement("div");
        div.className = "delivery";
        div.dataset.key = d.id;
        div.appendChild(document.createElement("p"));
        const t = div.appendChild(document.createElement("table"));
        const head = t.createTHead().insertRow();
        for (const h of ["#", "started", "status or error", "ms", "webhook-timestamp",
          "webhook-signature", "signed with the current secret"]) {
          head.appendChild(document.createElement("th")).textContent = h;
        }
        t.createTBody();
      }
      setText(div.firstChild, d.type + " to " + d.url + ": " + d.state +
        (d.reason ? " (" + d.reason + ")" : "") + "; webhook-id " + d.id);
      const tbody = div.querySelector("tbody");
      syncRows(tbody, d.attempts.map((a, k) => Object.assign({ n: k + 1 }, a)), (a) => a.n,
        (tr, a) => {
          setText(cell(tr, 0, "n"), a.n);
          setText(cell(tr, 1, "time"), a.time);
          setText(cell(tr, 2, "outcome"), a.ms === undefined && !a.status && !a.error ? "sending" : statusOrError(a));
          setText(cell(tr, 3, "n"), a.ms);
          setText(cell(tr, 4, "mono"), a.headers["webhook-timestamp"]);
          setText(cell(tr, 5, "sig"), a.headers["webhook-signature"]);
          setText(cell(tr, 6, "verified"), a.current_secret ? "yes" : "no (rotated since)");
        });
      if (div !== at) box.insertBefore(div, at);
      else at = at.nextSibling;
    }
    for (const div of old.values()) div.remove();
    show($("job-deliveries-none"), list.length === 0);
  }

  async function renderJob(job) {
    show($("job-missing"), false);
    show($("job-fields"), true);
    setText($("job-id"), job.id);
    setText($("job-status"), job.status);
    setClass($("job-status"), "status s-" + job.status);
    setText($("job-queue"), job.queue);
    setText($("job-created"), job.create_time);
    setText($("job-updated"), job.update_time);
    setText($("job-webhook"), job.webhook || "(none)");
    syncRows($("job-events").tBodies[0], job.events.map((e, k) => Object.assign({ n: k }, e)),
      (e) => e.n, (tr, e) => {
        setText(cell(tr, 0), e.action);
        setText(cell(tr, 1, "time"), e.time);
      });
    syncRows($("job-attempts").tBodies[0], job.attempts.map((a, k) => Object.assign({ n: k + 1 }, a)),
      (a) => a.n, (tr, a) => {
        setText(cell(tr, 0, "n"), a.n);
        setText(cell(tr, 1, "time"), a.time);
        setText(cell(tr, 2, "outcome"), a.ms === undefined ? "running" : statusOrError(a));
        setText(cell(tr, 3, "n"), a.ms);
        setText(cell(tr, 4), a.outcome || "");
      });
    show($("job-attempts-none"), job.attempts.length === 0);
    renderDeliveries(job.deliveries);
    await Promise.all([renderText(job, "input", job.sizes.input),
      renderText(job, "metadata", job.sizes.metadata),
      renderText(job, "output", job.sizes.output)]);
  }

  // ---- the loop ---------------------------------------------------------------------------

  let shownJob = "";

  // A page of the view's jobs. The emulator looks at a bounded number of jobs per request
  // (a page of a rare status may come back short, with `next`), so the page is completed
  // here by following `next`, one short request after another.
  async function jobsPage() {
    const page = { items: [], next: view.before || null, matching: 0 };
    for (let hops = 0; hops < 200; hops++) {
      const data = await getJSON("/_emulator/ui/data/jobs?queue=" + q(view.queue) +
        (view.status ? "&status=" + q(view.status) : "") +
        (page.next ? "&before=" + q(page.next) : "") + "&limit=" + (PAGE - page.items.length));
      page.items.push(...data.items);
      page.next = data.next;
      page.matching = data.matching;
      if (page.items.length >= PAGE || data.next === null || data.next === undefined) break;
    }
    return page;
  }

  // A request the emulator refused with 400 (a bad value in the address) is said where its
  // part of the page is; any other failure means the emulator cannot be reached.
  function refused(settled) {
    if (settled.status === "fulfilled") return null;
    const e = settled.reason;
    if (e && e.status === 400) return e.detail || e.message;
    throw e;
  }

  async function refresh() {
    const [queues, jobs, job] = await Promise.allSettled([
      getJSON("/_emulator/ui/data/queues"),
      view.queue ? jobsPage() : null,
      view.job ? getJSON("/_emulator/ui/data/job?id=" + q(view.job)).catch((e) => {
        if (e.status === 404) return null;
        throw e;
      }) : undefined,
    ]);
    if (queues.status === "rejected") throw queues.reason;
    renderQueues(queues.value);
    show($("jobs-section"), !!view.queue);
    setText($("jobs-queue"), view.queue);
    if ($("status-filter").value !== view.status) $("status-filter").value = view.status;
    const jobsBad = refused(jobs);
    setText($("jobs-bad"), jobsBad ? "Not shown, the address is not valid: " + jobsBad : "");
    show($("jobs-bad"), !!jobsBad);
    if (jobsBad) {
      renderJobs({ items: [], next: null, matching: 0 });
      show($("jobs-empty"), false);
      setText($("jobs-count"), "");
    } else if (jobs.value) {
      renderJobs(jobs.value);
    }
    show($("job-section"), !!view.job);
    if (view.job !== shownJob) {
      texts = {};
      shownJob = view.job;
    }
    const jobBad = refused(job);
    setText($("job-bad"), jobBad ? "Not shown, the address is not valid: job " + view.job + ": " + jobBad : "");
    show($("job-bad"), !!jobBad);
    if (jobBad) {
      setText($("job-id"), view.job);
      setText($("job-status"), "");
      show($("job-missing"), false);
      show($("job-fields"), false);
    } else if (job.value) {
      await renderJob(job.value);
    } else if (job.value === null) {
      setText($("job-id"), view.job);
      setText($("job-status"), "");
      show($("job-missing"), true);
      show($("job-fields"), false);
    }
  }

  async function tick() {
    timer = null;
    if (!document.hidden) {
      const live = $("live");
      try {
        await refresh();
        setText(live, "live: updated " + new Date().toLocaleTimeString() + ", every " +
          POLL_MS / 1000 + " s");
        setClass(live, "live");
      } catch (e) {
        setText(live, "cannot reach the emulator (" + e.message + "); retrying");
        setClass(live, "live error");
      }
    }
    schedule(POLL_MS);
  }

  function schedule(ms) {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(tick, ms);
  }

  document.addEventListener("DOMContentLoaded", () => {
    readHash();
    window.addEventListener("hashchange", () => { readHash(); schedule(0); });
    document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(0); });
    $("status-filter").addEventListener("change", (e) =>
      go({ status: e.target.value, before: "", job: "" }));
    $("newest").addEventListener("click", () => go({ before: "" }));
    $("older").addEventListener("click", () => {
      if (nextBefore !== null && nextBefore !== undefined) go({ before: String(nextBefore) });
    });
    schedule(0);
  });
})();
