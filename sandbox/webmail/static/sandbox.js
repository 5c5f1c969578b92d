// What only `all` sees: the relay queue, the DNS query log and the chaos switches, read
// from the sandbox's own HTTP API (/api/v1/queue, /api/v1/dns/log, /api/v1/chaos).
import { clock, h } from "./dom.js";
import { tone } from "./journey.js";

export const SANDBOX_VIEWS = [["queue", "Relay queue"], ["dns", "DNS log"], ["chaos", "Chaos"]];

function listOf(body, ...keys) {
  if (Array.isArray(body)) return body;
  for (const key of keys) if (body && Array.isArray(body[key])) return body[key];
  return [];
}

function cell(value) {
  if (value === null || value === undefined) return "";
  if (Array.isArray(value)) return value.join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function table(rows, columns, testid) {
  return h("table", { class: "grid", "data-testid": testid },
    h("thead", {}, h("tr", {}, columns.map(([, label]) => h("th", {}, label)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([key, , render]) => h("td", {}, render ? render(row[key], row) : cell(row[key])))))));
}

const pill = (value) => h("span", { class: `pill ${tone(value)}` }, cell(value));
const time = (value) => h("span", { class: "mono", title: cell(value) }, value ? clock(value) : "");

async function queueView({ api, toast, failed, refresh }) {
  const body = await api("/api/v1/queue");
  const rows = listOf(body, "deliveries");
  const retry = h("button", { class: "primary", onclick: async () => {
    try {
      const r = await api("/api/v1/queue/retry", { method: "POST", body: {} });
      toast(`Retrying now: ${cell(r.retried)} deliveries.`);
      refresh();
    } catch (err) { failed(err); }
  } }, "Retry all now");
  return h("div", { class: "tab-body" },
    h("div", { class: "toolbar" }, h("h2", {}, "Relay queue"), h("span", { class: "muted" }, `${rows.length} not done`), h("span", { class: "spacer" }), h("button", { onclick: refresh }, "Refresh"), retry),
    rows.length ? table(rows, [
      ["id", "#"], ["domain", "Domain"], ["recipients", "Recipients"], ["subject", "Subject"],
      ["state", "State", pill], ["attempts", "Tries"], ["next_attempt_at", "Next try", time], ["last_reply", "Last reply"],
    ], "queue") : h("p", { class: "muted" }, "The relay has nothing left to deliver."));
}

async function dnsView({ api, refresh }) {
  const body = await api("/api/v1/dns/log?limit=200");
  const rows = listOf(body, "queries");
  return h("div", { class: "tab-body" },
    h("div", { class: "toolbar" }, h("h2", {}, "DNS log"), h("span", { class: "muted" }, `latest ${rows.length}`), h("span", { class: "spacer" }), h("button", { onclick: refresh }, "Refresh")),
    rows.length ? table(rows, [
      ["at", "Time", time], ["client", "Client"], ["transport", "Via"], ["qname", "Name"], ["qtype", "Type"],
      ["rcode", "Answer code", pill], ["answer", "Answer"], ["micros", "µs"], ["fault", "Chaos"],
    ], "dns") : h("p", { class: "muted" }, "No DNS queries yet: the relay asks when it delivers."));
}

// The modes of `mail-sandbox chaos`; a PUT sets one half (MX server or DNS zone) and
// keeps the other, "off" (DELETE) clears both.
const MX_MODES = ["off", "greylist", "reject", "tempfail", "delay", "disconnect", "ratelimit"];
const DNS_MODES = ["off", "dns-servfail", "dns-timeout", "dns-nxdomain", "dns-delay"];

async function chaosView({ api, toast, failed, refresh }) {
  const body = await api("/api/v1/chaos");
  const rows = listOf(body, "domains").map((current) => {
    const name = current.domain;
    const mxMode = h("select", { "aria-label": `MX chaos for ${name}` },
      MX_MODES.map((m) => h("option", { value: m, selected: (current.mx?.mode || "off") === m }, m)));
    const dnsNow = current.dns ? (current.dns.mode ? `dns-${current.dns.mode}` : "dns-delay") : "off";
    const dnsMode = h("select", { "aria-label": `DNS chaos for ${name}` },
      DNS_MODES.map((m) => h("option", { value: m, selected: dnsNow === m }, m.replace("dns-", ""))));
    const ms = h("input", { type: "number", min: "0", step: "50", placeholder: "ms", "aria-label": `delay in ms for ${name}`,
      value: current.mx?.delay_ms || current.dns?.delay_ms || "", class: "ms" });
    const apply = h("button", { class: "small", onclick: async () => {
      const path = `/api/v1/chaos/${encodeURIComponent(name)}`;
      const delay = Number(ms.value || 0);
      try {
        await api(path, { method: "DELETE" });
        if (mxMode.value !== "off") await api(path, { method: "PUT", body: { mode: mxMode.value, ms: delay } });
        if (dnsMode.value !== "off") await api(path, { method: "PUT", body: { mode: dnsMode.value, ms: delay } });
        toast(`Chaos for ${name} updated.`);
      } catch (err) { failed(err); }
      refresh();
    } }, "Apply");
    return h("tr", { dataset: { domain: name } }, h("td", {}, name), h("td", {}, mxMode), h("td", {}, dnsMode), h("td", {}, ms),
      h("td", {}, current.active ? pill(current.description) : h("span", { class: "muted" }, "none")), h("td", {}, apply));
  });
  return h("div", { class: "tab-body" },
    h("div", { class: "toolbar" }, h("h2", {}, "Chaos"), h("span", { class: "muted" }, "make a fake domain's MX server or DNS misbehave"), h("span", { class: "spacer" }), h("button", { onclick: refresh }, "Refresh")),
    h("table", { class: "grid", "data-testid": "chaos" },
      h("thead", {}, h("tr", {}, ["Domain", "MX server", "DNS", "Delay", "In force", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows)));
}

export async function sandboxView(name, tools) {
  if (name === "queue") return queueView(tools);
  if (name === "dns") return dnsView(tools);
  return chaosView(tools);
}
