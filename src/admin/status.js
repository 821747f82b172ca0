// The status page: polls /status every second and draws the summary of
// every group of this node and one page of groups (PAGE at a time: a node
// may host thousands). Everything taken from the cluster (group ids, peer
// ids, error messages) goes into the page as text nodes or attribute
// values, never as markup; the Content-Security-Policy forbids inline and
// foreign scripts.
"use strict";

const REFRESH_MS = 1000;
const PAGE = 100; // groups per page (the endpoint's default limit)
// The page shown is in the fragment (#offset=200), so that a reload or a
// link keeps it; the fragment never leaves the browser.
const hashParams = () => new URLSearchParams(location.hash.slice(1));
let offset = Math.max(0, parseInt(hashParams().get("offset"), 10) || 0); // first group shown
let timer = null;
let generation = 0; // a refresh started before the last page change is dropped
const HISTORY = 300; // samples kept per group for the chart: 5 minutes
const LAG_WARN = 1000; // entries behind (the default catchup_margin)
const CONTACT_WARN_MS = 3000; // no answer for this long: lagging
const history = new Map(); // group id -> [{t, applied}]

// el("td", {class: "x"}, "text", child...): attributes by setAttribute,
// strings as text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

function fact(dl, name, value, cls) {
  dl.append(el("dt", {}, name), el("dd", cls ? { class: cls } : {}, value));
}

function confText(conf) {
  if (!conf) return "-";
  const parts = (conf.peers || []).slice();
  for (const l of conf.learners || []) parts.push(l + "/learner");
  return parts.length ? parts.join(", ") : "-";
}

function ago(ms) {
  if (ms === undefined || ms === null || ms < 0) return "never";
  if (ms < 10000) return ms + " ms ago";
  return Math.round(ms / 1000) + " s ago";
}

function followerRows(st) {
  const table = el("table", { class: "followers" },
    el("tr", {}, el("th", {}, "follower"), el("th", {}, "reachable"), el("th", {}, "match"),
      el("th", {}, "next"), el("th", {}, "lag"), el("th", {}, "last contact"),
      el("th", {}, "errors")));
  for (const r of st.replicators || []) {
    let cls = "follower";
    if (!r.reachable) cls += " unreachable";
    else if (r.log_lags >= LAG_WARN || r.last_contact_age_ms > CONTACT_WARN_MS) cls += " lagging";
    table.append(el("tr", { class: cls, "data-peer": r.peer },
      el("td", { class: "peer" }, r.peer + (r.learner ? " (learner)" : "")),
      el("td", { class: "reach" }, r.reachable ? "yes" : "UNREACHABLE"),
      el("td", {}, r.match_index), el("td", {}, r.next_index), el("td", { class: "lag" }, r.log_lags),
      el("td", {}, ago(r.last_contact_age_ms)), el("td", {}, r.consecutive_errors)));
  }
  return table;
}

// Entries applied per second over the kept history, as a line.
function chart(group, st) {
  const now = Date.now();
  let h = history.get(group);
  if (!h) history.set(group, (h = []));
  h.push({ t: now, applied: st.applied_index });
  while (h.length > HISTORY) h.shift();
  const rates = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000;
    rates.push(dt > 0 ? Math.max(0, (h[i].applied - h[i - 1].applied) / dt) : 0);
  }
  const W = 320, H = 60;
  const max = Math.max(1, ...rates);
  const box = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img" });
  const title = svg("title");
  title.textContent = "entries applied per second, last 5 minutes";
  box.append(title);
  const pts = rates.map((r, i) => {
    const x = W - (rates.length - 1 - i) * (W / (HISTORY - 1));
    return `${x.toFixed(1)},${(H - 4 - (r / max) * (H - 16)).toFixed(1)}`;
  });
  if (pts.length > 1) box.append(svg("polyline", { points: pts.join(" ") }));
  const label = svg("text", { x: 4, y: 11 });
  label.textContent = `max ${Math.round(max)}/s`;
  box.append(label);
  const last = rates.length ? Math.round(rates[rates.length - 1]) : 0;
  return el("div", { class: "chart" }, box,
    el("span", { class: "rate" }, `${last} entries/s applied now (commit index ${st.committed_index})`));
}

function groupSection(st) {
  const sec = el("section", { class: "group", "data-group": st.group, "data-state": st.state });
  sec.append(el("h2", {}, el("span", { class: "group-id" }, st.group),
    el("span", { class: "badge " + st.state }, st.state),
    el("span", { class: "muted" }, "term " + st.term)));
  const dl = el("dl", { class: "facts" });
  fact(dl, "this node", st.peer || "-");
  if (st.leader) fact(dl, "leader", st.leader, "leader");
  else fact(dl, "leader", "none known", "leader noleader");
  fact(dl, "configuration", confText(st.conf));
  if (st.joint) fact(dl, "old configuration (joint)", confText(st.old_conf));
  fact(dl, "log", `first ${st.first_log_index}, last ${st.last_log_index}, ` +
    `committed ${st.committed_index}, applied ${st.applied_index}`);
  fact(dl, "snapshot", `index ${st.snapshot_index}, term ${st.snapshot_term}`);
  fact(dl, "apply queue", st.apply_queue_depth);
  if (st.error) fact(dl, "error", `${st.error.name}: ${st.error.message}`, "error");
  sec.append(dl, chart(st.group, st));
  if ((st.replicators || []).length) sec.append(followerRows(st));
  return sec;
}

// One line of counts over all groups; the worrying ones stand out when
// not zero.
function summaryLine(sum) {
  const items = [
    [sum.groups, sum.groups === 1 ? "group" : "groups", false],
    [sum.leaders, "leading here", false],
    [sum.followers, "following", false],
    [sum.candidates, "electing", true],
    [sum.no_leader, "without leader", true],
    [sum.quiesced, "quiesced", false],
    [sum.lagging, "lagging", true],
    [sum.unreachable, "with an unreachable follower", true],
    [sum.error, "in error", true],
  ];
  return items.map(([n, what, bad]) =>
    el("span", { class: "stat" + (bad && n > 0 ? " warn" : "") },
      el("span", { class: "count" }, n), " " + what));
}

function showPager(doc) {
  const pager = document.getElementById("pager");
  pager.hidden = doc.total <= PAGE && doc.offset === 0;
  const last = Math.min(doc.offset + doc.groups.length, doc.total);
  document.getElementById("range").textContent =
    doc.groups.length ? `groups ${doc.offset + 1}-${last} of ${doc.total}` : `no groups here (${doc.total} in all)`;
  document.getElementById("prev").disabled = doc.offset === 0;
  document.getElementById("next").disabled = doc.next_offset === null;
}

function go(to) {
  offset = Math.max(0, to);
  const h = hashParams();
  h.set("offset", offset);
  location.hash = h.toString();
  generation++;
  clearTimeout(timer);
  refresh();
}

function problem(text) {
  const p = document.getElementById("problem");
  p.textContent = text || "";
  p.hidden = !text;
}

// With TLS the endpoint wants the admin token for /status: open the page as
// https://node:port/#token=TOKEN. The fragment never leaves the browser (it
// is not sent to the server, nor logged there).
function authHeaders() {
  const token = hashParams().get("token");
  return token ? { Authorization: "Bearer " + token } : {};
}

async function refresh() {
  const mine = generation;
  try {
    const url = `/status?offset=${offset}&limit=${PAGE}`;
    const resp = await fetch(url, { cache: "no-store", headers: authHeaders() });
    if (resp.status === 401) throw new Error("401: open the page as /#token=ADMIN_TOKEN");
    if (!resp.ok) throw new Error(`/status answered ${resp.status}`);
    const doc = await resp.json();
    if (mine !== generation) return; // the page changed meanwhile: its refresh draws
    if (doc.groups.length === 0 && doc.total > 0) {
      // Groups went away under this page: show the last one.
      offset = Math.floor((doc.total - 1) / PAGE) * PAGE;
      return go(offset);
    }
    for (const g of history.keys())
      if (!doc.groups.some((st) => st.group === g)) history.delete(g);
    document.getElementById("summary").replaceChildren(...summaryLine(doc.summary));
    showPager(doc);
    document.getElementById("groups").replaceChildren(...doc.groups.map(groupSection));
    document.getElementById("node").textContent = doc.groups.length ? doc.groups[0].peer || "" : "";
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    problem(null);
  } catch (e) {
    if (mine !== generation) return;
    for (const s of document.querySelectorAll("section.group")) s.classList.add("stale");
    problem("cannot read /status: " + e.message + " (showing the last answer)");
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

document.getElementById("prev").addEventListener("click", () => go(offset - PAGE));
document.getElementById("next").addEventListener("click", () => go(offset + PAGE));
refresh();
