// Tongbao console: live rendering while composing, drafts kept in the browser, the session's
// end announced before it comes, and live progress while sending.
// A static file because the Content-Security-Policy forbids inline scripts.
"use strict";

const POLL_MS = 2000;
const TYPING_PAUSE_MS = 300;
// The session warning shows this long before the session ends (or at a third of a short one).
const SESSION_WARNING_MS = 5 * 60 * 1000;
const SESSION_TICK_MS = 15 * 1000;
const DRAFT_FIELDS = ["headline", "body", "instruction", "severity", "status", "language",
  "expires", "msg_type", "references", "areas", "channels"];
const SVG = "http://www.w3.org/2000/svg";
const CHANNELS = ["sms", "voice", "wechat", "loudspeaker", "wecom_robot", "broadcast", "webhook",
  "weibo", "in_person"];

function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

// data-label-<key> attributes hold the translated words for a key.
function labelFor(element, key) {
  return element.dataset["label" + key[0].toUpperCase() + key.slice(1)] || key;
}

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, key) => values[key]);
}

// --- Compose: audience size and the messages as they will go out ---------------------------

function selectedResidents(form) {
  // A checked area already counts everyone beneath it, so checked descendants add nothing.
  let total = 0;
  for (const box of form.querySelectorAll('input[name="areas"]:checked')) {
    if (!isCheckedAncestorChain(box)) total += Number(box.dataset.residents);
  }
  return total;
}

function isCheckedAncestorChain(box) {
  let item = box.closest("li").parentElement.closest("li");
  while (item) {
    if (item.querySelector(":scope > label > input").checked) return true;
    item = item.parentElement.closest("li");
  }
  return false;
}

function showAudience(form) {
  const label = document.getElementById("audience-size");
  label.textContent = fill(label.dataset.template, { count: selectedResidents(form) });
}

// Each text's length against its limit, as the submit counts it; over the limit it says so
// (the field keeps everything typed: nothing is cut).
function showCounts(counts) {
  for (const [name, count] of Object.entries(counts || {})) {
    const counter = document.getElementById(`count-${name}`);
    if (!counter) continue;
    counter.textContent = fill(counter.dataset.template, count);
    counter.classList.toggle("over", count.characters > count.limit);
  }
}

function showLanguageWarning(language) {
  const warning = document.getElementById("language-warning");
  if (!warning) return;
  warning.hidden = !language;
  warning.textContent = language ? labelFor(warning, language) : "";
}

function showRendered(rendered) {
  showCounts(rendered.counts);
  showLanguageWarning(rendered.language_warning);
  const sms = rendered.sms;
  document.getElementById("render-sms").textContent = sms.text;
  const meta = document.getElementById("sms-meta");
  meta.textContent = fill(meta.dataset.template, sms.data);
  const card = document.getElementById("render-wechat");
  card.replaceChildren();
  for (const field of Object.values(rendered.wechat.data.template || {})) {
    const line = document.createElement("p");
    line.textContent = field.value;
    card.append(line);
  }
  document.getElementById("render-voice").textContent = rendered.voice.text;
}

async function renderDraft(form) {
  const url = document.getElementById("live-render").dataset.url;
  const response = await fetch(url, {
    method: "POST", body: new FormData(form), headers: { "X-CSRFToken": csrfToken() },
  });
  if (response.ok) {
    sessionRenewed();
    showRendered(await response.json());
  }
}

// --- Compose: the draft, kept in this browser while typing ----------------------------------
// One draft per user, in localStorage: it outlives a session that timed out, a closed tab and
// a refused form, and is forgotten once the notice has been submitted.

function draftKey() {
  return `tongbao:draft:${document.body.dataset.user}`;
}

function saveDraft(form) {
  const draft = {};
  for (const name of DRAFT_FIELDS) {
    const fields = form.querySelectorAll(`[name="${name}"]`);
    if (fields.length === 0) continue;
    const first = fields[0];
    if (first.type === "checkbox") {
      draft[name] = [...fields].filter((f) => f.checked).map((f) => f.value);
    } else if (first.type === "radio") {
      draft[name] = ([...fields].find((f) => f.checked) || {}).value || "";
    } else {
      draft[name] = first.value;
    }
  }
  try {
    localStorage.setItem(draftKey(), JSON.stringify(draft));
  } catch (error) { /* storage full or forbidden: the form itself still works */ }
}

function savedDraft() {
  try {
    return JSON.parse(localStorage.getItem(draftKey()) || "null");
  } catch (error) {
    return null;
  }
}

function forgetDraft() {
  try {
    localStorage.removeItem(draftKey());
  } catch (error) { /* nothing kept */ }
}

function fillForm(form, draft) {
  for (const [name, value] of Object.entries(draft)) {
    for (const field of form.querySelectorAll(`[name="${name}"]`)) {
      if (field.type === "checkbox") field.checked = value.includes(field.value);
      else if (field.type === "radio") field.checked = field.value === value;
      else field.value = value;
    }
  }
}

// A fresh compose page takes back the kept draft; an update of one notice only its own draft.
function restoreDraft(form) {
  const draft = savedDraft();
  if (!form.dataset.restoreDraft || !draft || !(draft.headline || draft.body)) return;
  const references = form.querySelector('[name="references"]').value;
  if (references && draft.references !== references) return;
  fillForm(form, draft);
  const notice = document.getElementById("draft-restored");
  notice.hidden = false;
  document.getElementById("discard-draft").addEventListener("click", () => {
    forgetDraft();
    window.location.reload();
  });
}

// --- Compose: the speech script as it will sound ------------------------------------------

// The synthesized file, or { error } with the server's translated reason when there is one.
async function fetchDraftAudio(form, url) {
  const response = await fetch(url, {
    method: "POST", body: new FormData(form), headers: { "X-CSRFToken": csrfToken() },
  });
  const isJson = (response.headers.get("Content-Type") || "").startsWith("application/json");
  const answer = isJson ? await response.json() : {};
  return response.ok && answer.url ? answer : { error: answer.error };
}

// Bumped whenever the form changes, so audio of an older draft arriving late is not shown.
let draftVersion = 0;

async function listen(form, section) {
  const version = draftVersion;
  const button = document.getElementById("listen");
  const status = document.getElementById("listen-status");
  const player = document.getElementById("draft-audio");
  button.disabled = true;
  status.textContent = section.dataset.labelBusy;
  const answer = await fetchDraftAudio(form, section.dataset.url).catch(() => ({}));
  button.disabled = false;
  if (version !== draftVersion) return;
  if (!answer.url) {
    status.textContent = answer.error || section.dataset.labelFailed;
    return;
  }
  status.textContent = fill(section.dataset.labelSeconds, { seconds: Math.round(answer.seconds) });
  player.src = answer.url;
  player.hidden = false;
  // The browser may refuse to start by itself; the player's own controls still work.
  player.play().catch(() => {});
}

// Audio of an earlier draft must not pass for the current one.
function forgetDraftAudio() {
  draftVersion += 1;
  const player = document.getElementById("draft-audio");
  player.pause();
  player.removeAttribute("src");
  player.hidden = true;
  document.getElementById("listen-status").textContent = "";
}

function setUpCompose(form) {
  restoreDraft(form);
  let timer = null;
  const update = () => {
    saveDraft(form);
    showAudience(form);
    forgetDraftAudio();
    clearTimeout(timer);
    timer = setTimeout(() => renderDraft(form), TYPING_PAUSE_MS);
  };
  form.addEventListener("input", update);
  form.addEventListener("change", update);
  const speech = document.getElementById("draft-speech");
  document.getElementById("listen").addEventListener("click", () => listen(form, speech));
  update();
}

// --- Watch: progress per channel, failures, loudspeakers, and a chart over time ------------

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function channelSummary(counts) {
  const reached = counts.delivered + counts.confirmed;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const pending = counts.planned + counts.queued + counts.sending;
  return {
    planned: total, sent: counts.sent + reached, delivered: reached, confirmed: counts.confirmed,
    failed: counts.failed, done: total - pending,
  };
}

function showProgress(status) {
  const rows = document.getElementById("progress-rows");
  rows.replaceChildren();
  for (const channel of CHANNELS) {
    const counts = status.deliveries[channel];
    if (!counts) continue;
    const s = channelSummary(counts);
    const row = document.createElement("tr");
    row.dataset.channel = channel;
    row.append(cell(labelFor(rows, channel)),
      cell(s.planned), cell(s.sent), cell(s.delivered), cell(s.confirmed), cell(s.failed));
    const bar = document.createElement("progress");
    bar.max = s.planned || 1;
    bar.value = s.done;
    const barCell = document.createElement("td");
    barCell.append(bar);
    row.append(barCell);
    row.cells[1].className = "planned";
    row.cells[3].className = "delivered";
    row.cells[5].className = "failed";
    rows.append(row);
  }
  showPaused(rows, status.paused_channels || {});
  document.getElementById("queue-down").hidden = status.queue_reachable !== false;
  document.getElementById("reached").textContent = status.reached_residents;
  document.getElementById("confirmed").textContent = status.confirmed_residents;
  document.getElementById("not-reached").textContent = status.not_reached_residents;
  document.getElementById("unconfirmed").textContent = status.unconfirmed_residents;
  document.getElementById("pending").textContent = status.pending;
  document.getElementById("resent").textContent = status.possibly_sent_twice;
  document.getElementById("resent-note").hidden = !status.possibly_sent_twice;
  document.getElementById("hotline-listeners").textContent = status.hotline_listeners;
  const state = document.getElementById("state");
  state.textContent = labelFor(state, status.state);
}

// A provider account that is blocked for now (WeChat's daily quota, a wrong template id):
// say which, why (in the reader's language when the cause is known), how long.
function showPaused(rows, paused) {
  const banner = document.getElementById("paused");
  const entries = Object.entries(paused);
  banner.hidden = entries.length === 0;
  banner.textContent = entries.length === 0 ? "" : `${banner.dataset.text} ` + entries.map(
    ([channel, p]) => `${labelFor(rows, channel)} (${Math.ceil(p.seconds_left / 60)} ${banner.dataset.minutes}): ${p.cause || p.reason}`,
  ).join("; ");
}

function showFailures(status) {
  document.getElementById("failures-total").textContent = status.failures_total;
  const list = document.getElementById("failures");
  list.replaceChildren(...status.failures.map((f) => {
    const item = document.createElement("li");
    const channel = labelFor(document.getElementById("progress-rows"), f.channel);
    item.textContent = `${[channel, f.address].filter(Boolean).join(" ")} ×${f.attempts}: ${f.error}`;
    return item;
  }));
}

// Per village: how many loudspeakers said "received" and "played", and when the last answered.
function showSpeakers(status) {
  const body = document.getElementById("speaker-rows");
  body.replaceChildren(...status.loudspeakers.map((v) => {
    const row = document.createElement("tr");
    const played = v.played > 0;
    const word = played ? body.dataset.yes : v.failed >= v.speakers ? body.dataset.failed : body.dataset.no;
    const verdict = cell(`${word} (${v.played}/${v.speakers})`);
    verdict.className = played ? "played" : "not-played";
    const when = v.answered_at ? new Date(v.answered_at).toLocaleTimeString(document.documentElement.lang,
      { timeZone: document.body.dataset.timeZone || undefined }) : "–";
    const received = cell(`${v.received}/${v.speakers}`);
    received.className = "received";
    row.append(cell(`${v.name} ${v.area_code}`), cell(v.speakers), received, verdict, cell(when));
    return row;
  }));
}

// The curve comes from the server's history (the ledger's timestamps), so a page opened late
// shows what happened since the release, not a line starting when the page was opened.
function drawChart(svg, history) {
  const width = 600, height = 200, left = 44, right = 14, bottom = 22, topMargin = 10;
  svg.replaceChildren();
  const seconds = history.seconds;
  if (seconds.length === 0) return;
  const lines = [["reached", history.reached], ["confirmed", history.confirmed]];
  CHANNELS.forEach((c) => { if (history.delivered[c]) lines.push([c, history.delivered[c]]); });
  const span = Math.max(seconds[seconds.length - 1], 1);
  const top = Math.max(1, ...lines.flatMap(([, series]) => series));
  const x = (t) => left + (t / span) * (width - left - right);
  const y = (n) => height - bottom - (n / top) * (height - bottom - topMargin);
  const elapsed = (t) => (t < 120 ? `${Math.round(t)} ${svg.dataset.seconds}`
    : `${Math.round(t / 60)} ${svg.dataset.minutes}`);
  svg.append(line(left, y(0), width - right, y(0), "axis"), line(left, y(0), left, y(top), "axis"),
    label(left - 6, y(top) + 4, String(top), "tick end"), label(left - 6, y(0), "0", "tick end"),
    label(left, height - 6, elapsed(0), "tick"), label(width - right, height - 6, elapsed(span), "tick end"));
  const key = document.getElementById("chart-key");
  key.replaceChildren();
  for (const [name, series] of lines) {
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", series.map((n, i) => `${x(seconds[i])},${y(n)}`).join(" "));
    path.setAttribute("class", `series series-${name}`);
    svg.append(path);
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = `swatch series-${name}`;
    item.append(swatch, ` ${labelFor(svg, name)} ${series[series.length - 1]}`);
    key.append(item);
  }
}

function line(x1, y1, x2, y2, cls) {
  const element = document.createElementNS(SVG, "line");
  Object.entries({ x1, y1, x2, y2, class: cls }).forEach(([k, v]) => element.setAttribute(k, v));
  return element;
}

function label(xPos, yPos, text, cls = "tick") {
  const element = document.createElementNS(SVG, "text");
  element.setAttribute("x", xPos);
  element.setAttribute("y", yPos);
  element.setAttribute("class", cls);
  element.textContent = text;
  return element;
}

function setUpWatch(section) {
  // The loudspeaker table shown; the server leaves it out of an answer while it is unchanged.
  let speakersVersion = "";
  const poll = async () => {
    let status;
    try {
      const url = `${section.dataset.url}?loudspeakers_version=${encodeURIComponent(speakersVersion)}`;
      const response = await fetch(url, { headers: { "X-Console-Poll": "1" } });
      if (!response.ok) throw new Error(String(response.status));
      status = await response.json();
    } catch (error) {
      document.getElementById("poll-error").hidden = false;
      setTimeout(poll, POLL_MS);
      return;
    }
    document.getElementById("poll-error").hidden = true;
    showProgress(status);
    showFailures(status);
    if (status.loudspeakers) {
      showSpeakers(status);
      speakersVersion = status.loudspeakers_version;
    }
    focusableScrollers();
    drawChart(document.getElementById("chart"), status.history);
    // "Finished" only when the announcement is over and nothing is pending.
    document.getElementById("watch-finished").hidden = !status.finished;
    if (status.finished) {
      section.dataset.finished = "true";
    } else {
      setTimeout(poll, POLL_MS);
    }
  };
  poll();
}

// --- The session: a warning before it ends, and a way to stay signed in --------------------

let sessionEnds = 0;

// Any request the page makes on the officer's behalf renews the session on the server.
function sessionRenewed() {
  const seconds = Number(document.body.dataset.sessionSeconds || 0);
  if (seconds) sessionEnds = Date.now() + seconds * 1000;
}

function showSessionState() {
  const warning = document.getElementById("session-warning");
  const left = sessionEnds - Date.now();
  const seconds = Number(document.body.dataset.sessionSeconds);
  const warnBefore = Math.min(SESSION_WARNING_MS, (seconds * 1000) / 3);
  warning.hidden = left > warnBefore;
  const ended = left <= 0;
  document.getElementById("stay-signed-in").hidden = ended;
  document.getElementById("session-login").hidden = !ended;
  document.getElementById("session-warning-text").textContent = ended
    ? labelFor(warning, "ended")
    : fill(labelFor(warning, "soon"), { minutes: Math.max(1, Math.ceil(left / 60000)) });
}

async function staySignedIn() {
  const response = await fetch(document.body.dataset.keepaliveUrl, {
    method: "POST", headers: { "X-CSRFToken": csrfToken() },
  }).catch(() => null);
  if (response && response.ok) {
    document.body.dataset.sessionSeconds = (await response.json()).seconds;
    sessionRenewed();
  } else {
    sessionEnds = 0;  // the server says it has ended
  }
  showSessionState();
}

function setUpSession() {
  sessionRenewed();
  document.getElementById("stay-signed-in").addEventListener("click", staySignedIn);
  showSessionState();
  setInterval(showSessionState, SESSION_TICK_MS);
}

// A table too wide for a phone scrolls inside itself; keyboard users reach it with Tab to
// scroll it with the arrow keys (only then: a table that fits adds no stop).
function focusableScrollers() {
  for (const table of document.querySelectorAll("table.list")) {
    if (table.scrollWidth > table.clientWidth) table.setAttribute("tabindex", "0");
    else table.removeAttribute("tabindex");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  focusableScrollers();
  window.addEventListener("resize", focusableScrollers);
  if (document.body.dataset.draftSent && document.body.dataset.user) forgetDraft();
  if (document.body.dataset.sessionSeconds) setUpSession();
  const compose = document.getElementById("compose");
  if (compose) setUpCompose(compose);
  const watch = document.getElementById("watch");
  if (watch) setUpWatch(watch);
});
