// The journey of a message hop by hop, drawn as the TUI draws it: a section per place
// on the path (submission server, relay queue, DNS, each MX connection, the mailbox),
// a line per hop with its time, step, outcome and the reply or answer that matters.
import { clock, h } from "./dom.js";

const BAD = new Set(["bounced", "failed", "refused", "rcpt refused", "null mx", "nxdomain", "loop", "not sent", "servfail", "timeout"]);
const WARN = new Set(["deferred", "held", "retry", "greylisted", "tempfail", "delayed"]);
const GOOD = new Set(["ok", "noerror", "accepted", "delivered", "stored", "answered", "queued", "connected", "signed", "pass", "sent"]);

export function tone(outcome) {
  const o = String(outcome ?? "").toLowerCase();
  if (BAD.has(o)) return "bad";
  if (WARN.has(o)) return "warn";
  if (GOOD.has(o)) return "good";
  return "";
}

export function stageOf(hop) {
  const step = hop.step;
  if (step === "submitted") return `app ${hop.client ?? ""} → submission server ${hop.server ?? ""}`.trim();
  if (step === "received") return `MX server ${hop.server ?? ""} receives it`;
  if (step === "queued") return "relay queue";
  if (step === "dns") return `DNS: where does ${hop.domain ?? ""} take mail?`;
  if (step === "connect" || step === "smtp") return `MX host ${hop.host ?? ""} (${hop.address ?? ""}:${hop.port ?? ""})`;
  if (step === "stored") return `mailbox ${hop.mailbox ?? ""} / ${hop.folder ?? ""}`;
  if (step === "relay") return `relay to ${hop.domain ?? ""}: attempt ${hop.attempt ?? ""}`;
  if (step === "bounce") return "bounce to the sender";
  return step;
}

export function describe(hop) {
  const parts = [];
  const step = hop.step;
  if (step === "submitted" || step === "received") {
    parts.push(`MAIL FROM:<${String(hop.mail_from ?? "").replace(/^<|>$/g, "")}>`);
    parts.push("RCPT TO:" + (hop.rcpt_to ?? []).map((r) => `<${r}>`).join(","));
    if (hop.auth_user) parts.push(`AUTH ${hop.auth_user}`);
    if (hop.tls) parts.push("TLS");
    if (hop.helo) parts.push(`HELO ${hop.helo}`);
  } else if (step === "queued") {
    parts.push(`${hop.domain ?? ""}: ${(hop.recipients ?? []).join(", ")}`);
  } else if (step === "dns") {
    parts.push(`${hop.query ?? ""} → ${hop.answer ?? hop.error ?? hop.outcome}`);
    if (hop.cached) parts.push("(cached)");
  } else if (step === "connect") {
    parts.push(String(hop.reply ?? hop.error ?? ""));
  } else if (step === "smtp" || step === "relay") {
    parts.push(String(hop.reply ?? ""));
    if (hop.retry_in_seconds !== undefined && hop.retry_in_seconds !== null) parts.push(`retry in ${hop.retry_in_seconds}s`);
  } else if (step === "stored") {
    if (hop.reason) parts.push(String(hop.reason));
  } else if (step === "bounce") {
    if (hop.to) parts.push(`DSN to ${hop.to}`);
    if (hop.failed) parts.push("failed: " + hop.failed.join(", "));
    if (hop.reason) parts.push(String(hop.reason));
  }
  return parts.filter(Boolean).join(" ");
}

export function hopsOf(body) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.journey)) return body.journey;
  if (body && Array.isArray(body.hops)) return body.hops;
  return [];
}

export function drawJourney(hops) {
  if (hops.length === 0) return h("p", { class: "muted" }, "No journey recorded for this message.");
  const list = h("ol", { class: "journey", "data-testid": "journey" });
  let current = null;
  let stage = null;
  for (const hop of hops) {
    const name = stageOf(hop);
    if (name !== current) {
      stage = h("li", { class: "stage" }, h("span", { class: "node" }), h("h3", {}, name));
      list.append(stage);
      current = name;
    }
    const t = tone(hop.outcome);
    if (t === "bad" || (t === "warn" && !stage.classList.contains("bad"))) stage.classList.add(t);
    else if (t === "good" && stage.classList.length === 1) stage.classList.add("good");
    stage.append(
      h("div", { class: "hop" },
        h("span", { class: "time" }, clock(hop.at)),
        h("span", { class: "step" }, hop.step),
        h("span", { class: `outcome ${t}` }, hop.outcome),
        h("span", { class: "detail" }, describe(hop)),
      ),
    );
  }
  return list;
}
