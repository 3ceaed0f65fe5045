/* The grid worker's page: each tap is kept in this phone's storage first, then sent.
 *
 * A tap made without a signal waits in localStorage (per user) and goes out when the
 * connection returns (the "online" event, every 15 s, and at each page load). Each tap has
 * an id made here, so a tap sent twice (an answer lost on the way back) is recorded once.
 * The page lists what is still waiting. Every word shown comes from the page (translated).
 */
(function () {
  "use strict";
  const page = document.getElementById("grid-work");
  if (!page) { return; }
  const words = page.dataset;
  const storeKey = "tongbao.grid.taps." + words.user;
  const RETRY_MS = 15000;
  let sending = false;

  function waiting() {
    try { return JSON.parse(localStorage.getItem(storeKey)) || []; } catch (error) { return []; }
  }

  function keep(taps) {
    localStorage.setItem(storeKey, JSON.stringify(taps));
    show();
  }

  function newTapId() {  // crypto.randomUUID needs https; getRandomValues does not
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function label(outcome) {
    return words["label" + outcome.split("_").map((p) => p[0].toUpperCase() + p.slice(1)).join("")];
  }

  function card(tap) {
    return page.querySelector(`.person[data-announcement="${tap.announcement}"][data-resident="${tap.resident}"]`);
  }

  function mark(tap, state) {
    const person = card(tap);
    if (!person) { return; }
    person.querySelector(".tap-state").textContent = label(tap.outcome) + " · " + state;
    if (tap.outcome === "told") { person.classList.add("told"); }
  }

  function show(problem) {
    const taps = waiting();
    const status = document.getElementById("queue-status");
    const list = document.getElementById("queue-list");
    status.textContent = problem || (taps.length ? words.waiting.replace("{count}", taps.length)
                                                 : words.allSent);
    list.replaceChildren(...taps.map((tap) => {
      const item = document.createElement("li");
      item.textContent = tap.name + " · " + label(tap.outcome);
      return item;
    }));
    taps.forEach((tap) => mark(tap, words.queued));
  }

  function tapped(button) {
    const person = button.closest(".person");
    const note = person.querySelector(".note").value.trim();
    const outcome = button.dataset.outcome;
    if (outcome === "moved" && !note) {
      person.querySelector(".tap-state").textContent = words.noteNeeded;
      person.querySelector(".note").focus();
      return;
    }
    keep([...waiting(), {
      id: newTapId(), announcement: Number(person.dataset.announcement),
      resident: Number(person.dataset.resident), outcome: outcome, note: note,
      tapped_at: new Date().toISOString(), name: person.dataset.name,
    }]);
    send();
  }

  async function send() {
    const taps = waiting();
    if (sending || !taps.length || !navigator.onLine) { return; }
    sending = true;
    try {
      const response = await fetch(words.endpoint, {
        method: "POST", credentials: "same-origin", redirect: "manual",
        headers: { "Content-Type": "application/json", "Accept": "application/json",
                   "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content },
        body: JSON.stringify({ taps: taps.map(({ name, ...tap }) => tap) }),
      });
      const json = (response.headers.get("Content-Type") || "").includes("application/json");
      if (!response.ok || !json) {
        show(response.type === "opaqueredirect" || response.status === 400 || response.status === 401
          ? words.login : words.retry);
        return;
      }
      const answers = new Map((await response.json()).results.map((r) => [r.id, r]));
      for (const tap of taps) {
        const answer = answers.get(tap.id);
        if (answer) {
          mark(tap, answer.status === "refused" ? words.refused + ": " + answer.error : words.recorded);
        }
      }
      keep(waiting().filter((tap) => !answers.has(tap.id)));  // taps made meanwhile stay
    } catch (error) {
      show(words.retry);  // no connection after all: the taps stay for the next try
    } finally {
      sending = false;
    }
  }

  page.addEventListener("click", (event) => {
    const button = event.target.closest("button.tap");
    if (button) { tapped(button); }
  });
  window.addEventListener("online", send);
  window.addEventListener("offline", () => show());
  setInterval(send, RETRY_MS);
  show();
  send();
}());
