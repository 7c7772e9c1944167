// Paseo Gateway in a browser: sessions, streamed prompts, cancel, resume after a reload.
// Plain script, no build step, no dependencies. Every piece of text from the API or the agent
// reaches the page through textContent / text nodes, never as HTML.
"use strict";

(() => {
  const KEY_STORE = "paseo-gateway.api-key"; // localStorage: the key survives the tab
  const RUN_STORE = "paseo-gateway.running-turn"; // sessionStorage: this tab's running turn
  const TERMINAL = new Set([
    "turn.completed",
    "turn.failed",
    "turn.cancelled",
    "turn.timed_out",
    "turn.permission", // ended turns stored before a permission became an event
    "turn.interrupted",
  ]);
  const EVENT_NAMES = [
    "turn.started",
    "turn.queued",
    "agent.created",
    "text",
    "reasoning",
    "tool",
    "todo",
    "notice",
    "turn.cancelling",
    "turn.permission_requested",
    "turn.permission_resolved",
    "gateway.shutdown",
    ...TERMINAL,
  ];
  const MAX_ACTIVITY = 200;
  // The API sits next to the page (also behind a reverse proxy's path prefix).
  const apiBase = new URL(".", window.location.href);

  const $ = (id) => document.getElementById(id);
  const ui = {
    keyForm: $("key-form"),
    key: $("api-key"),
    forgetKey: $("forget-key"),
    alert: $("alert"),
    createForm: $("create-form"),
    newTitle: $("new-title"),
    newModel: $("new-model"),
    newProvider: $("new-provider"),
    refresh: $("refresh-sessions"),
    sessionsEmpty: $("sessions-empty"),
    sessionList: $("session-list"),
    noSession: $("no-session"),
    sessionView: $("session-view"),
    sessionTitle: $("session-title"),
    sessionMeta: $("session-meta"),
    turnsEmpty: $("turns-empty"),
    turnList: $("turn-list"),
    live: $("live"),
    livePrompt: $("live-prompt"),
    liveText: $("live-text"),
    liveActivity: $("live-activity"),
    liveActivitySummary: $("live-activity-summary"),
    liveActivityList: $("live-activity-list"),
    liveReasoning: $("live-reasoning"),
    liveReasoningText: $("live-reasoning-text"),
    liveStatus: $("live-status"),
    permission: $("live-permission"),
    permissionTitle: $("permission-title"),
    permissionDescription: $("permission-description"),
    permissionInput: $("permission-input"),
    permissionMessage: $("permission-message"),
    permissionAllow: $("permission-allow"),
    permissionDeny: $("permission-deny"),
    promptForm: $("prompt-form"),
    prompt: $("prompt"),
    send: $("send"),
    cancel: $("cancel"),
  };

  let apiKey = localStorage.getItem(KEY_STORE) || "";
  let session = null; // the open session (SessionDetail)
  let live = null; // the turn shown in "Current turn" (see newLive)
  let liveNodes = null; // its text nodes, appended to as deltas arrive
  let connection = null; // {close()} of the stream being read
  let generation = 0; // bumps on every (re)connection; stale readers see a different value
  let retryDelay = 1000;
  let saveTimer = null;

  // --- Small helpers -------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    node.append(...children.filter((child) => child !== null && child !== undefined));
    return node;
  }

  function apiUrl(path) {
    return new URL(String(path).replace(/^\/+/, ""), apiBase);
  }

  function headers(extra) {
    const result = { ...extra };
    if (apiKey) result.Authorization = `Bearer ${apiKey}`;
    return result;
  }

  function when(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
  }

  function excerpt(text, size) {
    const flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > size ? `${flat.slice(0, size - 1)}…` : flat;
  }

  function showAlert(message) {
    ui.alert.textContent = message;
    ui.alert.hidden = !message;
  }

  class ApiError extends Error {
    constructor(status, problem) {
      const title = (problem && problem.title) || `HTTP ${status}`;
      const detail = problem && problem.detail;
      super(detail ? `${title}: ${detail}` : title);
      this.status = status;
      this.problem = problem || {};
    }
  }

  async function problemOf(response) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }

  function report(error) {
    if (error instanceof ApiError && error.status === 401) {
      showAlert(
        apiKey
          ? `The gateway refused this API key (401). ${error.problem.detail || ""}`.trim()
          : "Enter an API key: the gateway printed an admin key at its first start, and " +
              "`paseo-gateway keys create` makes more.",
      );
      ui.key.focus();
    } else {
      showAlert(error instanceof ApiError ? error.message : `Network error: ${error.message}`);
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: headers({ Accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(apiUrl(path), init);
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return { status: response.status, body: await response.json() };
  }

  // --- Sessions ------------------------------------------------------------------------------

  async function loadSessions() {
    try {
      const { body } = await api("GET", "sessions?limit=200");
      renderSessions(body.items);
      return true;
    } catch (error) {
      report(error);
      renderSessions([]);
      return false;
    }
  }

  function renderSessions(items) {
    ui.sessionsEmpty.hidden = items.length > 0;
    ui.sessionList.replaceChildren(
      ...items.map((item) => {
        const button = el(
          "button",
          { type: "button", class: "session-item", "data-session-id": item.id },
          el("span", { class: "session-name" }, item.title || "Untitled session"),
          el("span", { class: "muted small" }, `${shownStatus(item)} · ${when(item.created_at)}`),
        );
        if (session && session.id === item.id) button.setAttribute("aria-current", "true");
        button.addEventListener("click", () => openSession(item.id));
        return el("li", {}, button);
      }),
    );
  }

  async function createSession() {
    const body = {};
    const title = ui.newTitle.value.trim();
    const model = ui.newModel.value.trim();
    const provider = ui.newProvider.value.trim();
    if (title) body.title = title;
    if (model) body.model = model;
    if (provider) body.provider = provider;
    try {
      const { body: created } = await api("POST", "sessions", body);
      ui.newTitle.value = "";
      showAlert("");
      await openSession(created.id);
      await loadSessions();
      ui.prompt.focus();
    } catch (error) {
      report(error);
    }
  }

  async function openSession(id, resume) {
    if (live && live.sessionId !== id) stopLive(); // the turn goes on; we stop listening
    let detail;
    try {
      ({ body: detail } = await api("GET", `sessions/${encodeURIComponent(id)}`));
    } catch (error) {
      report(error);
      if (resume) forgetRunning();
      return;
    }
    showAlert("");
    session = detail;
    window.history.replaceState(null, "", `#session=${encodeURIComponent(id)}`);
    renderSession();
    for (const button of ui.sessionList.querySelectorAll(".session-item")) {
      if (button.dataset.sessionId === id) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
    if (resume) {
      showLive(resume);
      followWithEventSource();
    } else if (detail.active_turn && !(live && !live.done)) {
      // A turn runs (sent from elsewhere, or before this tab switched away): follow it.
      const turn = detail.active_turn;
      showLive(newLive({ sessionId: id, turnId: turn.id, prompt: turn.prompt }));
      followWithFetch();
    } else if (!live) {
      ui.live.hidden = true;
    }
    await loadTurns();
    updateButtons();
  }

  function renderSession() {
    ui.noSession.hidden = true;
    ui.sessionView.hidden = false;
    ui.sessionTitle.textContent = session.title || "Untitled session";
    const model = `${session.provider} / ${session.model || "its default model"}`;
    const where = session.daemon && session.daemon !== "default" ? ` on ${session.daemon}` : "";
    ui.sessionMeta.textContent = `${shownStatus(session)} · ${model} · ${session.cwd}${where} · ${session.id}`;
  }

  // A session is `pending` until its first turn has created the agent: while that turn runs,
  // it is starting, not waiting for anyone.
  function shownStatus(item) {
    const starting = live && !live.done && live.sessionId === item.id;
    return item.status === "pending" && starting ? "starting" : item.status;
  }

  // --- Earlier turns -------------------------------------------------------------------------

  async function loadTurns() {
    if (!session) return;
    const path = `sessions/${encodeURIComponent(session.id)}/turns`;
    try {
      let { body } = await api("GET", `${path}?limit=200`);
      if (body.total > body.items.length) {
        ({ body } = await api("GET", `${path}?limit=200&offset=${body.total - 200}`));
      }
      renderTurns(body.items.filter((turn) => !live || turn.id !== live.turnId));
    } catch (error) {
      report(error);
    }
  }

  function renderTurns(turns) {
    ui.turnsEmpty.hidden = turns.length > 0;
    ui.turnList.replaceChildren(
      ...turns.map((turn) => {
        const summary = el(
          "summary",
          {},
          el("span", { class: "turn-number" }, `#${turn.number}`),
          " ",
          el("span", { class: `badge badge-${turn.status}` }, turn.status),
          " ",
          el("span", { class: "muted small" }, when(turn.started_at)),
          " ",
          el("span", { class: "turn-prompt" }, excerpt(turn.prompt, 90)),
        );
        const body = el(
          "div",
          { class: "turn-body" },
          el(
            "p",
            { class: "prompt-echo" },
            el("span", { class: "label" }, "Prompt"),
            " ",
            turn.prompt,
          ),
          el("div", { class: "answer", tabindex: "0" }, turn.final_text || ""),
        );
        if (!turn.final_text) body.append(el("p", { class: "muted" }, "No text."));
        if (turn.error_code || turn.error_message) {
          const code = turn.error_code ? `${turn.error_code}: ` : "";
          body.append(el("p", { class: "error" }, `${code}${turn.error_message || ""}`));
        }
        const usage = usageText(turn.usage);
        if (usage) body.append(el("p", { class: "muted small" }, usage));
        return el("li", {}, el("details", { "data-turn-id": turn.id }, summary, body));
      }),
    );
  }

  function usageText(usage) {
    if (!usage) return "";
    const parts = [];
    if (usage.input_tokens != null) parts.push(`${usage.input_tokens} tokens in`);
    if (usage.output_tokens != null) parts.push(`${usage.output_tokens} out`);
    if (usage.cost_usd) parts.push(`$${Number(usage.cost_usd).toFixed(4)}`);
    return parts.join(" · ");
  }

  // --- The current turn ----------------------------------------------------------------------

  function newLive(fields) {
    return {
      sessionId: null,
      turnId: null,
      eventsUrl: null,
      token: null,
      prompt: "",
      lastEventId: 0,
      text: "",
      reasoning: "",
      activity: [],
      state: "running",
      note: "",
      done: false,
      permission: null, // the request the agent waits on (turn.permission_requested data)
      startedAt: Date.now(),
      ...fields,
      eventsUrl: fields.eventsUrl || (fields.turnId ? eventsPath(fields) : null),
    };
  }

  function eventsPath({ sessionId, turnId }) {
    return `/sessions/${encodeURIComponent(sessionId)}/turns/${encodeURIComponent(turnId)}/events`;
  }

  function showLive(state) {
    live = state;
    liveNodes = {
      text: document.createTextNode(state.text),
      reasoning: document.createTextNode(state.reasoning),
    };
    ui.live.hidden = false;
    ui.livePrompt.textContent = state.prompt;
    ui.liveText.replaceChildren(liveNodes.text);
    ui.liveReasoningText.replaceChildren(liveNodes.reasoning);
    ui.liveReasoning.hidden = !state.reasoning;
    ui.liveActivityList.replaceChildren(...state.activity.map((line) => el("li", {}, line)));
    renderActivitySummary();
    ui.liveText.dataset.turnId = state.turnId || "";
    showPermission();
    renderStatus();
    updateButtons();
  }

  function stopLive() {
    closeConnection();
    live = null;
    liveNodes = null;
    ui.live.hidden = true;
    ui.livePrompt.textContent = "";
    ui.liveText.replaceChildren();
    ui.liveText.dataset.turnId = "";
    ui.liveStatus.textContent = "";
    delete ui.liveStatus.dataset.state;
    forgetRunning();
    updateButtons();
  }

  function closeConnection() {
    generation += 1;
    if (connection) connection.close();
    connection = null;
  }

  function renderStatus() {
    ui.liveStatus.dataset.state = live.state;
    const words = {
      sending: "Sending…",
      running: "Running…",
      queued: "Queued: waiting for a free slot…",
      waiting_permission: "Waiting for your answer…",
    };
    let main = words[live.state] || live.state;
    if (!live.done && live.startedAt) main += ` ${elapsed(Date.now() - live.startedAt)}`;
    ui.liveStatus.textContent = live.note ? `${main} — ${live.note}` : main;
  }

  function elapsed(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    const minutes = Math.floor(seconds / 60);
    return minutes ? `${minutes} min ${seconds % 60} s` : `${seconds} s`;
  }

  // While a turn runs, the status line counts the time it has taken.
  setInterval(() => {
    if (live && !live.done) renderStatus();
  }, 1000);

  function renderActivitySummary() {
    const count = live.activity.length;
    const last = count ? ` — last: ${live.activity[count - 1]}` : "";
    ui.liveActivitySummary.textContent = `Activity (${count})${last}`;
    ui.liveActivity.hidden = count === 0;
  }

  function addActivity(line) {
    live.activity.push(line);
    if (live.activity.length > MAX_ACTIVITY) live.activity.shift();
    ui.liveActivityList.append(el("li", {}, line));
    while (ui.liveActivityList.childElementCount > MAX_ACTIVITY) {
      ui.liveActivityList.firstElementChild.remove();
    }
    renderActivitySummary();
  }

  function appendText(delta) {
    const box = ui.liveText;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    live.text += delta;
    liveNodes.text.appendData(delta);
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function handleEvent(name, id, raw) {
    if (!live || live.done) return;
    if (name !== "gateway.shutdown" && id !== null && id !== undefined && id !== "") {
      const seq = Number.parseInt(id, 10);
      if (seq <= live.lastEventId) return; // already shown (a replay overlapping a resume)
      live.lastEventId = seq;
    }
    let data = {};
    try {
      data = JSON.parse(raw);
    } catch {
      data = {};
    }
    retryDelay = 1000;
    if (live.note.endsWith("reconnecting…")) live.note = "";
    switch (name) {
      case "turn.started":
        live.state = "running";
        live.note = "";
        break;
      case "turn.queued":
        live.state = "queued";
        break;
      case "agent.created":
        addActivity(`agent created ${data.agent_id || ""}`.trim());
        refreshSessionHead();
        break;
      case "text":
        if (live.state === "queued") live.state = "running";
        appendText(String(data.delta || ""));
        break;
      case "reasoning":
        live.reasoning += String(data.delta || "");
        liveNodes.reasoning.appendData(String(data.delta || ""));
        ui.liveReasoning.hidden = false;
        break;
      case "tool": {
        const detail = data.detail || {};
        const what = detail.command || detail.path || detail.query || "";
        addActivity(`tool ${data.name || "?"} ${data.status || ""} ${what}`.trim());
        break;
      }
      case "todo":
        addActivity(`todo: ${data.completed ?? 0}/${data.total ?? 0} done`);
        break;
      case "notice":
        addActivity(`${data.kind || "notice"}: ${data.text || ""}`);
        break;
      case "turn.cancelling":
        live.note = data.detail || "stopping…";
        break;
      case "turn.permission_requested":
        live.state = "waiting_permission";
        live.permission = data;
        addActivity(`asks: ${data.title || data.name || "permission"}`);
        showPermission();
        break;
      case "turn.permission_resolved":
        live.state = "running";
        live.permission = null;
        addActivity(`${data.behavior || "answered"} by ${data.by || "?"}`);
        showPermission();
        break;
      case "gateway.shutdown":
        live.note = "the gateway is restarting; reconnecting…";
        break;
      default:
        if (TERMINAL.has(name)) finish(data);
    }
    renderStatus();
    scheduleSave();
  }

  // --- A person in the loop: the agent's permission request --------------------------------

  function showPermission() {
    const asked = live && !live.done ? live.permission : null;
    ui.permission.hidden = !asked;
    if (!asked) return;
    ui.permissionTitle.textContent = asked.title || asked.name || "permission";
    ui.permissionDescription.textContent = asked.description || "";
    const input = asked.input ? JSON.stringify(asked.input, null, 2) : "";
    ui.permissionInput.textContent = input;
    ui.permissionInput.hidden = !input;
    ui.permissionAllow.disabled = ui.permissionDeny.disabled = false;
  }

  async function answerPermission(behavior) {
    const asked = live && live.permission;
    if (!asked || !session) return;
    ui.permissionAllow.disabled = ui.permissionDeny.disabled = true;
    const body = { behavior };
    const message = ui.permissionMessage.value.trim();
    if (behavior === "deny" && message) body.message = message;
    try {
      const path = `sessions/${session.id}/permissions/${encodeURIComponent(asked.permission_id)}`;
      await api("POST", path, body);
      ui.permissionMessage.value = "";
    } catch (error) {
      ui.permissionAllow.disabled = ui.permissionDeny.disabled = false;
      report(error);
    }
  }

  function finish(data) {
    live.done = true;
    live.permission = null;
    showPermission();
    live.state = data.status || "ended";
    const parts = [];
    if (data.error_code) parts.push(data.error_code);
    if (data.message) parts.push(data.message);
    const usage = usageText(data.usage);
    if (usage) parts.push(usage);
    live.note = parts.join(" · ");
    closeConnection();
    forgetRunning();
    updateButtons();
    loadSessions();
    refreshSessionHead();
    loadTurns();
  }

  async function refreshSessionHead() {
    if (!session) return;
    try {
      const { body } = await api("GET", `sessions/${encodeURIComponent(session.id)}`);
      if (session && body.id === session.id) {
        session = body;
        renderSession();
      }
    } catch {
      // the list and the stream already say what matters
    }
  }

  function updateButtons() {
    const running = Boolean(live && !live.done);
    ui.send.disabled = running || !session;
    ui.cancel.disabled = !running;
  }

  // Remember the running turn in this tab, so that a reload picks it up where it was.
  function forgetRunning() {
    clearTimeout(saveTimer);
    saveTimer = null;
    sessionStorage.removeItem(RUN_STORE);
  }

  function scheduleSave() {
    if (saveTimer === null) saveTimer = setTimeout(saveLive, 200);
  }

  function saveLive() {
    saveTimer = null;
    if (!live || live.done || !live.token) return;
    const state = { ...live };
    try {
      sessionStorage.setItem(RUN_STORE, JSON.stringify(state));
    } catch {
      // Too big for storage: keep where to reconnect; a reload replays from the start.
      const slim = { ...state, text: "", reasoning: "", activity: [], lastEventId: 0 };
      sessionStorage.setItem(RUN_STORE, JSON.stringify(slim));
    }
  }

  // --- Reading the stream --------------------------------------------------------------------

  // A Server-Sent Events parser over decoded text chunks: calls onEvent(name, id, data).
  function sseParser(onEvent) {
    let buffer = "";
    let name = "";
    let data = [];
    let id = null;
    function line(text) {
      if (text === "") {
        if (data.length) onEvent(name || "message", id, data.join("\n"));
        name = "";
        data = [];
        id = null;
        return;
      }
      if (text.startsWith(":")) return; // a comment: keep-alive ping
      const colon = text.indexOf(":");
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? "" : text.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = value;
    }
    return (chunk) => {
      buffer += chunk;
      const breaks = /\r\n|\n|\r/g;
      let start = 0;
      let match;
      while ((match = breaks.exec(buffer)) !== null) {
        if (match[0] === "\r" && match.index === buffer.length - 1) break; // maybe half a \r\n
        line(buffer.slice(start, match.index));
        start = breaks.lastIndex;
      }
      buffer = buffer.slice(start);
    };
  }

  async function pump(response, mine) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const feed = sseParser((name, id, data) => {
      if (mine === generation) handleEvent(name, id, data);
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || mine !== generation) break;
        feed(decoder.decode(value, { stream: true }));
      }
    } catch {
      // dropped or aborted: the caller reconnects if the turn has not ended
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function reconnectLater() {
    if (!live || live.done) return;
    const mine = generation;
    live.note = "connection lost; reconnecting…";
    renderStatus();
    setTimeout(() => {
      if (mine === generation && live && !live.done) {
        if (live.token) followWithEventSource();
        else followWithFetch();
      }
    }, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 15000);
  }

  // After a reload: EventSource on the events URL with the stream token, from the last event.
  function followWithEventSource() {
    closeConnection();
    const mine = generation;
    const url = apiUrl(live.eventsUrl);
    url.searchParams.set("after", String(live.lastEventId));
    url.searchParams.set("token", live.token);
    const source = new EventSource(url);
    connection = { close: () => source.close() };
    for (const name of EVENT_NAMES) {
      source.addEventListener(name, (event) => {
        if (mine !== generation) return;
        handleEvent(name, event.lastEventId, event.data);
      });
    }
    source.addEventListener("open", () => {
      if (mine === generation && live && live.note.includes("reconnecting")) {
        live.note = "";
        renderStatus();
      }
    });
    source.addEventListener("error", () => {
      if (mine !== generation || !live || live.done) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired token, say): try once more with the API key itself.
        live.token = null;
        followWithFetch();
      } else {
        live.note = "connection lost; reconnecting…"; // EventSource retries by itself
        renderStatus();
      }
    });
  }

  // With the API key (a turn found running when a session is opened, or a refused token).
  async function followWithFetch() {
    closeConnection();
    const mine = generation;
    const controller = new AbortController();
    connection = { close: () => controller.abort() };
    const url = apiUrl(live.eventsUrl);
    url.searchParams.set("after", String(live.lastEventId));
    let response;
    try {
      response = await fetch(url, {
        headers: headers({ Accept: "text/event-stream" }),
        signal: controller.signal,
      });
    } catch {
      if (mine === generation) reconnectLater();
      return;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, await problemOf(response));
      if (mine === generation) giveUp(error);
      return;
    }
    await pump(response, mine);
    if (mine === generation) reconnectLater();
  }

  function giveUp(error) {
    report(error);
    live.note = "lost the turn's stream; open the session again to see how it ended";
    live.state = "unknown";
    live.done = true;
    renderStatus();
    closeConnection();
    forgetRunning();
    updateButtons();
  }

  async function sendPrompt() {
    const text = ui.prompt.value;
    if (!session || !text.trim()) return;
    const sessionId = session.id;
    showAlert("");
    closeConnection();
    showLive(newLive({ sessionId, prompt: text, state: "sending" }));
    let response;
    try {
      response = await fetch(apiUrl(`sessions/${encodeURIComponent(sessionId)}/prompt`), {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify({ prompt: text }),
      });
    } catch (error) {
      notSent(error);
      return;
    }
    if (!response.ok) {
      const error = new ApiError(response.status, await problemOf(response));
      notSent(error);
      // Another client's turn runs in this session: show it instead.
      if (error.problem.code === "turn_in_progress") await openSession(sessionId);
      return;
    }
    if (!live || live.sessionId !== sessionId || live.turnId) {
      response.body.cancel().catch(() => {}); // the user moved on meanwhile; the turn goes on
      return;
    }
    ui.prompt.value = "";
    live.turnId = response.headers.get("X-Turn-Id");
    live.eventsUrl = response.headers.get("Content-Location");
    live.token = response.headers.get("X-Stream-Token");
    live.state = "running";
    ui.liveText.dataset.turnId = live.turnId || "";
    renderStatus();
    saveLive();
    loadTurns(); // the turn shown before this one joins the list
    const mine = generation;
    const controller = new AbortController();
    connection = { close: () => controller.abort() };
    await pump(response, mine);
    if (mine === generation) reconnectLater();
  }

  function notSent(error) {
    report(error);
    if (live && !live.turnId) {
      live.done = true;
      live.state = "not sent";
      live.note = error.message;
      renderStatus();
    }
    updateButtons();
  }

  async function cancelTurn() {
    if (!live || live.done) return;
    ui.cancel.disabled = true;
    live.note = "stop requested…";
    renderStatus();
    try {
      const path = `sessions/${encodeURIComponent(live.sessionId)}/cancel`;
      const { status, body } = await api("POST", path);
      if (status === 202 && live && !live.done) {
        live.note = body.detail;
        renderStatus();
      }
    } catch (error) {
      report(error);
      updateButtons();
    }
  }

  // --- Wiring --------------------------------------------------------------------------------

  ui.key.value = apiKey;
  ui.permissionAllow.addEventListener("click", () => answerPermission("allow"));
  ui.permissionDeny.addEventListener("click", () => answerPermission("deny"));
  ui.keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    apiKey = ui.key.value.trim();
    if (apiKey) localStorage.setItem(KEY_STORE, apiKey);
    else localStorage.removeItem(KEY_STORE);
    showAlert("");
    if (await loadSessions()) ui.noSession.textContent = "Create a session or open one.";
  });
  ui.forgetKey.addEventListener("click", () => {
    apiKey = "";
    ui.key.value = "";
    localStorage.removeItem(KEY_STORE);
    stopLive();
    session = null;
    ui.sessionView.hidden = true;
    ui.noSession.hidden = false;
    renderSessions([]);
  });
  ui.createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    createSession();
  });
  ui.refresh.addEventListener("click", () => {
    loadSessions();
    loadTurns();
  });
  ui.promptForm.addEventListener("submit", (event) => {
    event.preventDefault();
    sendPrompt();
  });
  ui.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (!ui.send.disabled) sendPrompt();
    }
  });
  ui.cancel.addEventListener("click", cancelTurn);
  window.addEventListener("pagehide", () => {
    clearTimeout(saveTimer);
    saveLive();
  });

  async function start() {
    updateButtons();
    if (!apiKey) {
      // Nothing is asked of the API before there is a key to ask with.
      ui.noSession.textContent = "Paste an API key above to begin.";
      ui.key.focus();
      return;
    }
    const ok = await loadSessions();
    if (!ok) return;
    ui.noSession.textContent = "Create a session or open one.";
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(RUN_STORE) || "null");
    } catch {
      saved = null;
    }
    if (saved && saved.sessionId && saved.turnId && saved.token) {
      const note = `resumed after a reload, from event ${Number(saved.lastEventId) || 0}`;
      await openSession(saved.sessionId, newLive({ ...saved, done: false, note }));
      return;
    }
    const wanted = new URLSearchParams(window.location.hash.slice(1)).get("session");
    if (wanted) await openSession(wanted);
  }

  start();
})();
