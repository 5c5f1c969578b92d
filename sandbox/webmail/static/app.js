// The webmail page. Its server reads the mailbox over IMAP and pushes IDLE's news over a
// WebSocket; this module draws folders, the list and the message, and never turns
// message data into HTML (see dom.js). The message's own HTML is shown only in a
// sandboxed frame whose document the server serves under a CSP that blocks every load.
import { clear, h, person, safeLink, shortDate, shortPerson, size, toast } from "./dom.js";
import { drawJourney, hopsOf } from "./journey.js";
import { sandboxView, SANDBOX_VIEWS } from "./sandbox.js";

const PAGE = 50;
const $ = (id) => document.getElementById(id);

const state = {
  user: null, all: false, csrf: "",
  folders: [], folder: null, view: null, // view: a sandbox view name instead of a folder
  start: 0, total: 0, query: "", rows: [], cursor: -1,
  open: null, tab: null, images: false,
  socket: null, reconnect: 0, refreshTimer: null,
};

// --- talking to the server -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, text) { super(text); this.status = status; }
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin", cache: "no-store",
  });
  if (response.status === 401 && !path.endsWith("/login")) {
    showLogin("Your session ended; log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { const j = await response.json(); text = j.Error || j.error || text; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, text);
  }
  return raw ? response : response.json();
}

function q(params) {
  return new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "")).toString();
}

function failed(err) {
  if (err instanceof ApiError && err.status === 401) return;
  toast(err.message || String(err), true);
}

// --- login ---------------------------------------------------------------------------------

function showLogin(message = "") {
  closeSocket();
  state.user = null;
  state.csrf = "";
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("login-user").focus();
}

async function startApp(who) {
  state.user = who.user; state.all = who.all; state.csrf = who.csrf;
  if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
  $("login").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = who.user;
  $("whoami").title = who.user;
  $("compose").hidden = who.all;
  openSocket();
  if (!who.all) {
    // The list first, the folder counts right after: rows on screen sooner.
    await selectFolder("INBOX");
    await loadFolders();
  } else {
    await loadFolders();
    const inboxes = state.folders.filter((f) => f.folder === "INBOX");
    const inbox = inboxes.find((f) => f.messages > 0) || inboxes[0] || state.folders[0];
    if (inbox) await selectFolder(inbox.name);
    else drawList();
  }
  $("rows").focus();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const who = await api("/webmail/api/login", {
      method: "POST", body: { user: $("login-user").value, password: $("login-password").value },
    });
    $("login-password").value = "";
    await startApp(who);
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("/webmail/api/logout", { method: "POST", body: {} }); } catch (err) { failed(err); }
  state.open = null;
  showLogin("Logged out.");
});

// --- live changes ----------------------------------------------------------------------------

function openSocket() {
  closeSocket();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/webmail/api/events?${q({ csrf: state.csrf })}`);
  state.socket = socket;
  socket.addEventListener("open", () => { state.reconnect = 0; document.body.dataset.live = "1"; });
  socket.addEventListener("message", (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === "changed") scheduleRefresh();
    else if (msg.type === "ended") showLogin(msg.text);
  });
  socket.addEventListener("close", () => {
    document.body.dataset.live = "0";
    if (state.socket !== socket || !state.user) return;
    state.reconnect = Math.min(10000, (state.reconnect || 250) * 2);
    setTimeout(() => { if (state.user && state.socket === socket) openSocket(); }, state.reconnect);
  });
}

function closeSocket() {
  const socket = state.socket;
  state.socket = null;
  if (socket) socket.close();
}

// Floods of changes (a burst of deliveries) merge into one refresh.
function scheduleRefresh() {
  if (state.refreshTimer) return;
  state.refreshTimer = setTimeout(async () => {
    state.refreshTimer = null;
    if (state.view || !state.folder) return;
    try {
      await loadList({ keep: true });
      await loadFolders();
    } catch (err) { failed(err); }
  }, 30);
}

// --- folders ------------------------------------------------------------------------------------

const ORDER = { INBOX: 0, Sent: 1, Trash: 3 };

async function loadFolders() {
  const body = await api("/webmail/api/folders");
  state.folders = body.folders;
  drawFolders();
}

function drawFolders() {
  const nav = clear($("sidebar"));
  const groups = new Map();
  for (const f of state.folders) {
    if (!groups.has(f.mailbox)) groups.set(f.mailbox, []);
    groups.get(f.mailbox).push(f);
  }
  for (const [mailbox, list] of groups) {
    nav.append(h("h3", { title: mailbox }, state.all ? mailbox : "Folders"));
    list.sort((a, b) => (ORDER[a.folder] ?? 2) - (ORDER[b.folder] ?? 2) || a.folder.localeCompare(b.folder));
    for (const f of list) {
      nav.append(h("button", {
        class: `folder${f.name === state.folder && !state.view ? " active" : ""}`,
        dataset: { folder: f.name }, title: `${f.messages} messages, ${f.unseen} unread`,
        onclick: () => selectFolder(f.name),
      },
      h("span", { class: "name" }, f.folder),
      f.unseen ? h("span", { class: "badge", "data-testid": "unseen" }, f.unseen) : h("span", { class: "count" }, f.messages || "")));
    }
  }
  if (state.all) {
    nav.append(h("h3", {}, "Sandbox"));
    for (const [name, label] of SANDBOX_VIEWS) {
      nav.append(h("button", {
        class: `folder${state.view === name ? " active" : ""}`, dataset: { view: name },
        onclick: () => showSandboxView(name),
      }, h("span", { class: "name" }, label)));
    }
  }
}

async function selectFolder(name) {
  state.view = null;
  state.folder = name;
  state.start = 0;
  state.query = "";
  state.cursor = -1;
  $("search").value = "";
  $("app").classList.remove("menu-open", "reading", "wide-view");
  drawFolders();
  closeMessage();
  // Listing the folder selects it on the server: IDLE then watches it.
  try { await loadList(); } catch (err) { failed(err); }
}

// --- the list -----------------------------------------------------------------------------

async function loadList({ keep = false } = {}) {
  const folder = state.folder;
  const body = await api(`/webmail/api/messages?${q({ folder, start: state.start, limit: PAGE, q: state.query })}`);
  if (folder !== state.folder) return;
  const selectedUid = keep && state.rows[state.cursor] ? state.rows[state.cursor].uid : null;
  state.rows = body.messages;
  state.total = body.total;
  if (selectedUid !== null) {
    state.cursor = state.rows.findIndex((r) => r.uid === selectedUid);
  }
  if (!keep || state.cursor < 0 || state.cursor >= state.rows.length) {
    state.cursor = state.rows.length ? Math.max(0, Math.min(state.cursor, state.rows.length - 1)) : -1;
  }
  drawList();
}

function drawList() {
  const f = state.folders.find((x) => x.name === state.folder);
  $("list-title").textContent = f ? (state.all ? `${f.mailbox} · ${f.folder}` : f.folder) : (state.folder || "");
  const first = state.total ? state.start + 1 : 0;
  const last = state.start + state.rows.length;
  $("list-count").textContent = state.query
    ? `${state.total} found` : state.total ? `${first}–${last} of ${state.total}` : "";
  $("prev-page").disabled = state.start === 0;
  $("next-page").disabled = last >= state.total;
  const list = clear($("rows"));
  state.rows.forEach((row, index) => {
    const marks = `${row.flagged ? "★" : ""}${row.answered ? "↩" : ""}${row.attachment ? "📎" : ""}`;
    list.append(h("li", {
      class: `row${row.seen ? "" : " unread"}${index === state.cursor ? " cursor" : ""}`,
      dataset: { uid: row.uid }, "data-testid": "row",
      onclick: () => { state.cursor = index; openMessage(row.uid); },
    },
    h("span", { class: "dot" }),
    h("span", { class: "from", title: person(row.from) }, shortPerson(row.from), marks ? h("span", { class: "marks" }, ` ${marks}`) : null),
    h("span", { class: "date", title: row.date || row.received || "" }, shortDate(row.received)),
    h("span", { class: "subject" }, row.subject || "(no subject)")));
  });
  // For tests/bench/webmail.py: when the first rows of this page load were on screen.
  if (state.rows.length && !performance.getEntriesByName("webmail-first-rows").length) {
    performance.mark("webmail-first-rows");
  }
  const empty = $("list-empty");
  empty.hidden = state.rows.length > 0;
  empty.textContent = state.query ? `Nothing in this folder matches “${state.query}”.` : "No messages here yet. Send one to this address over SMTP and it appears at once.";
}

function moveCursor(delta) {
  if (!state.rows.length) return;
  state.cursor = Math.max(0, Math.min(state.rows.length - 1, state.cursor + delta));
  drawList();
  const el = $("rows").children[state.cursor];
  if (el) el.scrollIntoView({ block: "nearest" });
  if (state.open) openMessage(state.rows[state.cursor].uid);
}

$("prev-page").addEventListener("click", () => page(-1));
$("next-page").addEventListener("click", () => page(1));

function page(direction) {
  const start = state.start + direction * PAGE;
  if (start < 0 || start >= state.total) return;
  state.start = start;
  state.cursor = 0;
  loadList().catch(failed);
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = $("search").value.trim();
  state.start = 0;
  state.cursor = 0;
  if (state.view) { const inbox = state.folders.find((f) => f.folder === "INBOX"); if (inbox) { selectFolder(inbox.name).then(() => { $("search").value = state.query; }); return; } }
  loadList().catch(failed);
  $("rows").focus();
});

// --- the message --------------------------------------------------------------------------

function closeMessage() {
  state.open = null;
  $("app").classList.remove("reading");
  clear($("view-pane")).append(h("div", { class: "placeholder" },
    h("div", {}, h("p", {}, "Select a message to read it."), h("p", { class: "muted small" }, "j / k to move, Enter to open, ? for every key."))));
}

async function openMessage(uid) {
  const folder = state.folder;
  let msg;
  try {
    msg = await api(`/webmail/api/message?${q({ folder, uid })}`);
  } catch (err) { failed(err); return; }
  if (folder !== state.folder) return;
  const sameMessage = state.open && state.open.uid === msg.uid && state.open.folder === msg.folder;
  state.open = msg;
  if (!sameMessage) { state.images = false; state.tab = msg.has_html ? "html" : "text"; }
  const row = state.rows.find((r) => r.uid === uid);
  if (row && !row.seen) { row.seen = true; drawList(); loadFolders().catch(failed); }
  drawMessage();
  $("app").classList.add("reading");
}

const TABS = [
  ["text", "Text"], ["html", "HTML"], ["headers", "Headers"], ["source", "Source"],
  ["attachments", "Attachments"], ["links", "Links"], ["journey", "Journey"],
];

function drawMessage() {
  const msg = state.open;
  const pane = clear($("view-pane"));
  const moveTargets = state.folders.filter((f) => f.mailbox === msg.mailbox && f.name !== msg.folder);
  const move = h("select", { "aria-label": "Move to", title: "Move to folder",
    onchange: (e) => { if (e.target.value) act("move", { to: e.target.value }); } },
  h("option", { value: "" }, "Move to…"), moveTargets.map((f) => h("option", { value: f.name }, f.folder)));
  const people = h("dl", { class: "people" },
    h("dt", {}, "From"), h("dd", {}, person(msg.from) || "(none)"),
    h("dt", {}, "To"), h("dd", {}, person(msg.to) || "(none)"),
    msg.cc.length ? [h("dt", {}, "Cc"), h("dd", {}, person(msg.cc))] : null,
    h("dt", {}, "Date"), h("dd", {}, msg.date || "(none)"),
    msg.auth ? [h("dt", {}, "Auth"), authLine(msg.auth)] : null);
  const toolbar = h("div", { class: "toolbar" },
    h("button", { class: "ghost only-narrow", onclick: () => { closeMessage(); $("rows").focus(); } }, "‹ Back"),
    state.all ? null : h("button", { onclick: () => composeFrom("reply"), title: "Reply (r)" }, "Reply"),
    state.all ? null : h("button", { onclick: () => composeFrom("forward"), title: "Forward (f)" }, "Forward"),
    h("button", { onclick: () => toggleSeen(), title: "Mark unread (u)" }, msg.seen ? "Mark unread" : "Mark read"),
    h("button", { onclick: () => toggleFlag(), title: "Flag (s)" }, msg.flagged ? "★ Unflag" : "☆ Flag"),
    move,
    h("button", { onclick: () => act("delete"), title: "Delete (#)" }, msg.folder.endsWith("Trash") ? "Delete for good" : "Delete"));
  const tabs = h("div", { class: "tabs", role: "tablist" }, TABS.map(([name, label], i) => {
    let text = label;
    if (name === "attachments") text = `${label} (${msg.attachments.length})`;
    if (name === "links") text = `${label} (${msg.links.length})`;
    return h("button", { class: `tab${state.tab === name ? " active" : ""}`, role: "tab", dataset: { tab: name },
      title: `${label} (${i + 1})`, onclick: () => { state.tab = name; drawMessage(); } }, text);
  }));
  const body = h("div", { class: "tab-body" });
  pane.append(h("article", { class: "message", "data-testid": "message" },
    h("header", { class: "message-head" }, h("h1", {}, msg.subject || "(no subject)"), people, toolbar),
    tabs, body));
  drawTab(body, msg);
}

// The receiving MX's verdicts, one word a method; each clause with its reason on hover.
function authLine(auth) {
  const words = [["SPF", auth.spf], ["DKIM", auth.dkim], ["DMARC", auth.dmarc]];
  if (auth.arc !== "none") words.push(["ARC", auth.arc]);
  const detail = auth.results.map((c) => `${c.method}=${c.result}${c.reason ? ` (${c.reason})` : ""}`);
  return h("dd", { class: "auth", "data-testid": "auth", title: [`by ${auth.authserv_id}`, ...detail].join("\n") },
    words.map(([name, word], i) => [i ? " · " : "", h("span", { class: `verdict ${word === "pass" ? "pass" : "bad"}` }, `${name} ${word}`)]));
}

function drawTab(body, msg) {
  const where = { folder: msg.folder, uid: msg.uid };
  switch (state.tab) {
  case "text":
    body.append(h("pre", { class: "text-body", "data-testid": "text" }, msg.text ?? "(this message has no text part)"));
    break;
  case "html":
    if (!msg.has_html) { body.append(h("p", { class: "muted" }, "This message has no HTML part.")); break; }
    if (msg.remote_content && !state.images) {
      body.append(h("div", { class: "banner", "data-testid": "images-blocked" },
        h("span", {}, "Remote images and other loads are blocked for this message."),
        h("button", { class: "small", onclick: () => { state.images = true; drawMessage(); } }, "Show remote images")));
    }
    // No allow-scripts and no allow-same-origin: the frame cannot run code or reach us.
    body.append(h("iframe", { class: "html-frame", sandbox: "", referrerpolicy: "no-referrer", title: "HTML part",
      src: `/webmail/api/frame?${q({ ...where, images: state.images ? 1 : 0 })}` }));
    break;
  case "headers":
    body.append(h("table", { class: "grid headers" }, h("tbody", {},
      msg.headers.map(([name, value]) => h("tr", {}, h("td", {}, name), h("td", {}, value))))));
    break;
  case "source": {
    const pre = h("pre", { class: "source", "data-testid": "source" }, "Loading…");
    body.append(h("p", {}, h("a", { href: `/webmail/api/raw?${q({ ...where, download: 1 })}`, download: `message-${msg.uid}.eml` }, "Download .eml"), h("span", { class: "muted" }, `  ${size(msg.size)}`)), pre);
    api(`/webmail/api/raw?${q(where)}`, { raw: true }).then((r) => r.text()).then((t) => { pre.textContent = t; }, failed);
    break;
  }
  case "attachments":
    if (!msg.attachments.length) { body.append(h("p", { class: "muted" }, "No attachments.")); break; }
    body.append(h("ul", { class: "plain" }, msg.attachments.map((a) => h("li", {},
      h("a", { href: `/webmail/api/attachment?${q({ ...where, index: a.index })}`, download: a.filename, "data-testid": "attachment" }, a.filename),
      h("span", { class: "muted" }, `  ${a.content_type}, ${size(a.size)}`)))));
    break;
  case "links":
    if (!msg.links.length) { body.append(h("p", { class: "muted" }, "No links in this message.")); break; }
    body.append(h("ul", { class: "plain" }, msg.links.map((url) => h("li", {}, safeLink(url)))));
    break;
  case "journey": {
    const box = h("div", {}, h("p", { class: "muted" }, "Loading the journey…"));
    body.append(box);
    if (msg.id === null) { clear(box).append(h("p", { class: "muted" }, "This copy is no longer stored.")); break; }
    api(`/api/v1/message/${encodeURIComponent(msg.id)}/journey`).then((j) => {
      clear(box).append(drawJourney(hopsOf(j)));
    }, (err) => { clear(box).append(h("p", { class: "error" }, `Cannot load the journey: ${err.message}`)); });
    break;
  }
  default:
    break;
  }
}

async function act(kind, extra = {}) {
  const msg = state.open;
  if (!msg) return;
  try {
    if (kind === "delete") {
      const r = await api("/webmail/api/delete", { method: "POST", body: { folder: msg.folder, uids: [msg.uid] } });
      toast(r.expunged ? "Deleted for good." : "Moved to Trash.");
    } else if (kind === "move") {
      await api("/webmail/api/move", { method: "POST", body: { folder: msg.folder, uids: [msg.uid], to: extra.to } });
      toast(`Moved to ${extra.to}.`);
    }
    const index = state.cursor;
    closeMessage();
    await loadList({ keep: false });
    state.cursor = Math.min(index, state.rows.length - 1);
    drawList();
    await loadFolders();
  } catch (err) { failed(err); }
}

async function setFlags(add, remove) {
  const msg = state.open;
  const row = msg ? null : state.rows[state.cursor];
  const target = msg || row;
  if (!target) return;
  const folder = msg ? msg.folder : state.folder;
  try {
    await api("/webmail/api/flags", { method: "POST", body: { folder, uids: [target.uid], add, remove } });
    await loadList({ keep: true });
    await loadFolders();
    if (msg) {
      const updated = state.rows.find((r) => r.uid === msg.uid);
      if (updated) { msg.seen = updated.seen; msg.flagged = updated.flagged; }
      drawMessage();
    }
  } catch (err) { failed(err); }
}

function current() { return state.open || state.rows[state.cursor]; }
function toggleSeen() { const t = current(); if (t) setFlags(t.seen ? [] : ["\\Seen"], t.seen ? ["\\Seen"] : []); }
function toggleFlag() { const t = current(); if (t) setFlags(t.flagged ? [] : ["\\Flagged"], t.flagged ? ["\\Flagged"] : []); }

// --- compose -------------------------------------------------------------------------------

let draft = { mode: "new", source: null };

function compose({ mode = "new", to = "", cc = "", subject = "", body = "", source = null, note = "" } = {}) {
  if (state.all) { toast("Log in as a mailbox address to send: `all` has no address to send from.", true); return; }
  draft = { mode, source };
  $("compose-title").textContent = mode === "reply" ? "Reply" : mode === "forward" ? "Forward" : "New message";
  $("compose-to").value = to;
  $("compose-cc").value = cc;
  $("compose-subject").value = subject;
  $("compose-body").value = body;
  $("compose-note").textContent = note || `From ${state.user}, through the sandbox's submission server with SMTP AUTH.`;
  $("compose-error").textContent = "";
  $("compose-dialog").showModal();
  (to ? $("compose-body") : $("compose-to")).focus();
  if (to) $("compose-body").setSelectionRange(0, 0);
}

function quoteText(text) { return (text || "").split("\n").map((l) => `> ${l}`).join("\n"); }

function composeFrom(mode) {
  const msg = state.open;
  if (!msg) return;
  const source = { folder: msg.folder, uid: msg.uid };
  if (mode === "reply") {
    const to = person(msg.reply_to.length ? msg.reply_to : msg.from);
    const subject = /^re:/i.test(msg.subject) ? msg.subject : `Re: ${msg.subject}`;
    compose({ mode, to, subject, source, body: `\n\nOn ${msg.date}, ${person(msg.from)} wrote:\n${quoteText(msg.text)}\n` });
  } else {
    const subject = /^fwd:/i.test(msg.subject) ? msg.subject : `Fwd: ${msg.subject}`;
    compose({ mode, subject, source, body: "\n\n", note: "The original message goes along as an attachment (forwarded.eml)." });
  }
}

$("compose").addEventListener("click", () => compose());
$("compose-cancel").addEventListener("click", () => $("compose-dialog").close());
$("compose-body").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("compose-form").requestSubmit(); } });
$("compose-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = $("compose-send");
  button.disabled = true;
  $("compose-error").textContent = "";
  try {
    const r = await api("/webmail/api/send", { method: "POST", body: {
      mode: draft.mode, source: draft.source,
      to: $("compose-to").value, cc: $("compose-cc").value,
      subject: $("compose-subject").value, body: $("compose-body").value,
    } });
    $("compose-dialog").close();
    toast(`Sent: ${r.reply}`);
    loadFolders().catch(failed);
  } catch (err) {
    $("compose-error").textContent = err.message;
  } finally { button.disabled = false; }
});

// --- the sandbox's own views (all) ------------------------------------------------------------

async function showSandboxView(name) {
  state.view = name;
  state.open = null;
  $("app").classList.remove("menu-open");
  $("app").classList.add("reading", "wide-view");
  drawFolders();
  const pane = clear($("view-pane"));
  try {
    pane.append(await sandboxView(name, { api, toast, failed, refresh: () => showSandboxView(name) }));
  } catch (err) {
    pane.append(h("div", { class: "tab-body" }, h("p", { class: "error" }, `Cannot load this view: ${err.message}`)));
  }
}

// --- theme, help, keys ----------------------------------------------------------------------

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  try { localStorage.setItem("webmail-theme", theme); } catch (_) { /* private mode */ }
}
const savedTheme = (() => { try { return localStorage.getItem("webmail-theme"); } catch (_) { return null; } })();
applyTheme(savedTheme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
$("theme").addEventListener("click", () => applyTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark"));
$("help").addEventListener("click", () => $("help-dialog").showModal());
$("menu").addEventListener("click", () => $("app").classList.toggle("menu-open"));

document.addEventListener("keydown", (event) => {
  if (!state.user || event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.querySelector("dialog[open]")) return; // Esc closes a dialog by itself
  const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement?.tagName);
  if (typing) {
    if (event.key === "Escape") {
      if (document.activeElement === $("search") && $("search").value) {
        $("search").value = ""; state.query = ""; state.start = 0; loadList().catch(failed);
      }
      document.activeElement.blur();
    }
    return;
  }
  const key = event.key;
  const actions = {
    j: () => moveCursor(1), ArrowDown: () => moveCursor(1),
    k: () => moveCursor(-1), ArrowUp: () => moveCursor(-1),
    Enter: () => { const row = state.rows[state.cursor]; if (row) openMessage(row.uid); },
    Escape: () => { if (state.open) { closeMessage(); drawList(); } else if (state.query) { $("search").value = ""; state.query = ""; state.start = 0; loadList().catch(failed); } },
    "/": () => $("search").focus(),
    "?": () => $("help-dialog").showModal(),
    "[": () => page(-1), "]": () => page(1),
    c: () => compose(), r: () => composeFrom("reply"), f: () => composeFrom("forward"),
    s: () => toggleFlag(), u: () => toggleSeen(),
    "#": () => act("delete"), Delete: () => act("delete"),
  };
  if (state.open && /^[1-7]$/.test(key)) {
    state.tab = TABS[Number(key) - 1][0];
    drawMessage();
    event.preventDefault();
    return;
  }
  const run = actions[key];
  if (run) { event.preventDefault(); run(); }
});

// --- start ------------------------------------------------------------------------------------

(async () => {
  closeMessage();
  try {
    const response = await fetch("/webmail/api/session", { credentials: "same-origin", cache: "no-store" });
    if (response.ok) { await startApp(await response.json()); return; }
  } catch (_) { /* the server is down: the login form says so when used */ }
  showLogin();
})();
