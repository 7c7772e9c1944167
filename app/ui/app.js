// Paseo Gateway in a browser: sessions, streamed prompts with their tool calls, diffs and
// todo lists, earlier turns drawn the same way, images, cancel, resume after a reload.
// Plain ES modules, no build step, no dependencies. Every piece of text from the API or the
// agent reaches the page as text nodes (the answer's Markdown through markdown.js, which
// builds DOM nodes), never as HTML.

import {
  TERMINAL,
  TurnView,
  answerText,
  applyEvent,
  bytesText,
  costText,
  el,
  excerpt,
  normalizeItems,
  usageText,
  userItem,
} from "./transcript.js";

const KEY_STORE = "paseo-gateway.api-key"; // localStorage: the key survives the tab
const RUN_STORE = "paseo-gateway.running-turn"; // sessionStorage: this tab's running turn
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
// What POST …/prompt takes (docs/api.md, Images and attachments): checked here first so that
// a person hears at once, in words, why an image cannot go.
const IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);
const MAX_IMAGES = 8;
const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
const MAX_IMAGES_TOTAL_BYTES = 20 * 1024 * 1024;
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
  newProvider: $("new-provider"),
  newModel: $("new-model"),
  newMode: $("new-mode"),
  pickerNote: $("picker-note"),
  refresh: $("refresh-sessions"),
  sessionsEmpty: $("sessions-empty"),
  sessionList: $("session-list"),
  refreshWebhooks: $("refresh-webhooks"),
  refreshUsage: $("refresh-usage"),
  usageList: $("usage-list"),
  webhooksNote: $("webhooks-note"),
  webhookList: $("webhook-list"),
  noSession: $("no-session"),
  sessionView: $("session-view"),
  sessionTitle: $("session-title"),
  sessionMeta: $("session-meta"),
  sessionUsage: $("session-usage"),
  sessionMode: $("session-mode"),
  turnsEmpty: $("turns-empty"),
  turnList: $("turn-list"),
  live: $("live"),
  liveTranscript: $("live-transcript"),
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
  imageInput: $("image-input"),
  imageList: $("image-list"),
  imageError: $("image-error"),
  send: $("send"),
  cancel: $("cancel"),
};

let apiKey = localStorage.getItem(KEY_STORE) || "";
let session = null; // the open session (SessionDetail)
let turns = []; // its earlier turns as listed
let live = null; // the turn shown in "Current turn" (see newLive)
let liveView = null; // its TurnView
let connection = null; // {close()} of the stream being read
let generation = 0; // bumps on every (re)connection; stale readers see a different value
let retryDelay = 1000;
let saveTimer = null;
let providers = []; // GET /providers, one entry per provider
let models = []; // GET /v1/models as {provider, model}
let images = []; // the images to send with the next prompt: {name, media_type, bytes, url}
const turnItems = new Map(); // turn id -> its items, once read
const openTurns = new Set(); // earlier turns shown open

// --- Small helpers -------------------------------------------------------------------------

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

function showAlert(message) {
  ui.alert.textContent = message;
  ui.alert.hidden = !message;
}

class ApiError extends Error {
  constructor(status, problem) {
    // problem+json, or the OpenAI-compatible routes' {error: {message}}
    const openai = problem && problem.error && problem.error.message;
    const title = (problem && problem.title) || openai || `HTTP ${status}`;
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

function sessionPath(id, rest) {
  return `sessions/${encodeURIComponent(id)}${rest || ""}`;
}

// --- Providers, models and modes: the pickers ----------------------------------------------

async function loadPickers() {
  const notes = [];
  try {
    const { body } = await api("GET", "providers");
    const seen = new Map();
    for (const entry of body) {
      const known = seen.get(entry.provider);
      if (!known || (known.status !== "ready" && entry.status === "ready")) {
        seen.set(entry.provider, entry);
      }
    }
    providers = [...seen.values()];
  } catch (error) {
    providers = [];
    notes.push(`Providers could not be listed (${error.message}).`);
  }
  try {
    const { body } = await api("GET", "v1/models");
    models = body.data.map(({ id }) => {
      const slash = id.indexOf("/");
      return slash < 0
        ? { provider: id, model: "" }
        : { provider: id.slice(0, slash), model: id.slice(slash + 1) };
    });
  } catch (error) {
    models = [];
    notes.push(`Models could not be listed (${error.message}).`);
  }
  ui.pickerNote.textContent = notes.join(" ");
  ui.pickerNote.hidden = notes.length === 0;
  renderProviderPicker();
  renderSessionMode();
}

function providerOf(id) {
  return providers.find((entry) => entry.provider === id) || null;
}

function option(value, text, selected) {
  const node = el("option", { value }, text);
  if (selected) node.selected = true;
  return node;
}

function renderProviderPicker() {
  const chosen = ui.newProvider.value;
  ui.newProvider.replaceChildren(
    option("", "Gateway default", !chosen),
    ...providers.map((entry) => {
      const state = entry.status === "ready" ? "" : ` (${entry.status})`;
      const node = option(entry.provider, `${entry.label || entry.provider}${state}`, false);
      node.disabled = entry.status === "unavailable" || entry.status === "error";
      node.selected = entry.provider === chosen && !node.disabled;
      return node;
    }),
  );
  renderModelAndModePickers();
}

function renderModelAndModePickers() {
  const provider = providerOf(ui.newProvider.value);
  const chosenModel = ui.newModel.value;
  const chosenMode = ui.newMode.value;
  if (!provider) {
    ui.newModel.replaceChildren(option("", "Gateway default", true));
    ui.newMode.replaceChildren(option("", "Gateway default", true));
    ui.newModel.disabled = ui.newMode.disabled = true;
    return;
  }
  const own = models.filter((entry) => entry.provider === provider.provider && entry.model);
  ui.newModel.replaceChildren(
    option("", `${provider.label || provider.provider}'s default`, !chosenModel),
    ...own.map((entry) => option(entry.model, entry.model, entry.model === chosenModel)),
  );
  const modes = provider.modes || [];
  const fallback = modes.find((mode) => mode.id === provider.default_mode);
  const defaultLabel = fallback ? fallback.label : provider.default_mode;
  ui.newMode.replaceChildren(
    option("", defaultLabel ? `Default (${defaultLabel})` : "Default", !chosenMode),
    ...modes.map((mode) => option(mode.id, mode.label || mode.id, mode.id === chosenMode)),
  );
  ui.newModel.disabled = false;
  ui.newMode.disabled = modes.length === 0;
}

function renderSessionMode() {
  if (!session) return;
  const provider = providerOf(session.provider);
  const modes = [...((provider && provider.modes) || [])];
  if (session.mode && !modes.some((mode) => mode.id === session.mode)) {
    modes.unshift({ id: session.mode, label: session.mode });
  }
  const current = session.mode || (provider && provider.default_mode) || "";
  ui.sessionMode.replaceChildren(
    ...(current && !modes.some((mode) => mode.id === current)
      ? [option(current, current, true)]
      : []),
    ...modes.map((mode) => option(mode.id, mode.label || mode.id, mode.id === current)),
  );
  ui.sessionMode.disabled = modes.length < 2 || session.status === "closed";
}

async function changeMode() {
  if (!session) return;
  const mode = ui.sessionMode.value;
  try {
    const { body } = await api("PATCH", sessionPath(session.id), { mode });
    session = { ...session, ...body };
    showAlert("");
    renderSession();
  } catch (error) {
    report(error);
    renderSessionMode();
  }
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

// --- Usage ---------------------------------------------------------------------------------

// Today and this month, in UTC (the windows budgets count in), summed over the rows.
async function loadUsage() {
  const now = new Date();
  const day = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()));
  const month = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  try {
    const spans = await Promise.all(
      [["Today", day], ["This month", month]].map(async ([label, from]) => {
        const path = `usage?group_by=key&from=${encodeURIComponent(from.toISOString())}`;
        const { body } = await api("GET", path);
        return { label, total: sumUsage(body.rows) };
      }),
    );
    renderUsage(spans);
  } catch (error) {
    renderUsage([]);
    report(error);
  }
}

function sumUsage(rows) {
  const total = { turns: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 };
  for (const row of rows) for (const name of Object.keys(total)) total[name] += row[name];
  return total;
}

function renderUsage(spans) {
  ui.usageList.replaceChildren(
    ...spans.flatMap(({ label, total }) => [
      el("dt", {}, label),
      el(
        "dd",
        { "data-usage": label },
        `${total.turns} turn${total.turns === 1 ? "" : "s"} · ` +
          `${total.input_tokens} in / ${total.output_tokens} out tokens · ` +
          `$${total.cost_usd.toFixed(2)}`,
      ),
    ]),
  );
}

// --- Webhooks ------------------------------------------------------------------------------

// Deliveries shown under each webhook, newest first.
const SHOWN_DELIVERIES = 5;

async function loadWebhooks() {
  try {
    const { body } = await api("GET", "webhooks?limit=50");
    const withDeliveries = await Promise.all(
      body.items.map(async (hook) => {
        const path = `webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=${SHOWN_DELIVERIES}`;
        const { body: page } = await api("GET", path);
        return { hook, deliveries: page.items };
      }),
    );
    ui.webhooksNote.textContent = body.items.length ? "" : "No webhooks yet.";
    renderWebhooks(withDeliveries);
  } catch (error) {
    renderWebhooks([]);
    if (error instanceof ApiError && error.status === 403) {
      ui.webhooksNote.textContent = "This key cannot see webhooks (it lacks the webhooks scope).";
    } else {
      ui.webhooksNote.textContent = "";
      report(error);
    }
  }
}

function renderWebhooks(entries) {
  ui.webhookList.replaceChildren(
    ...entries.map(({ hook, deliveries }) =>
      el(
        "li",
        { class: "webhook", "data-webhook-id": hook.id },
        el("span", { class: "webhook-url" }, hook.url),
        el(
          "span",
          { class: "muted small" },
          `${hook.enabled ? "on" : `off${hook.disabled_reason ? `: ${hook.disabled_reason}` : ""}`}` +
            ` · ${hook.events.join(", ")}`,
        ),
        deliveries.length
          ? el(
              "ul",
              { class: "delivery-list" },
              ...deliveries.map((delivery) =>
                el(
                  "li",
                  { class: `delivery delivery-${delivery.status}` },
                  `${delivery.event}: ${delivery.status}, ${delivery.attempts} ` +
                    `attempt${delivery.attempts === 1 ? "" : "s"}` +
                    (delivery.last_status_code ? `, HTTP ${delivery.last_status_code}` : "") +
                    ` · ${when(delivery.created_at)}`,
                ),
              ),
            )
          : el("span", { class: "muted small" }, "No deliveries yet."),
      ),
    ),
  );
}

async function createSession() {
  const body = {};
  const title = ui.newTitle.value.trim();
  if (title) body.title = title;
  if (ui.newProvider.value) body.provider = ui.newProvider.value;
  if (ui.newModel.value) body.model = ui.newModel.value;
  if (ui.newMode.value) body.mode = ui.newMode.value;
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
    ({ body: detail } = await api("GET", sessionPath(id)));
  } catch (error) {
    report(error);
    if (resume) forgetRunning();
    return;
  }
  showAlert("");
  if (!session || session.id !== id) {
    turns = [];
    openTurns.clear();
  }
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
  renderSessionMode();
  renderSessionUsage();
}

// The session's running total (GET /sessions/{id} `usage`); before a gateway says it, the sum
// of the turns listed here.
function renderSessionUsage() {
  let usage = session.usage || null;
  if (!usage) {
    const used = turns.filter((turn) => turn.usage);
    if (used.length) {
      const sum = (key) => used.reduce((total, turn) => total + (Number(turn.usage[key]) || 0), 0);
      const priced = used.some((turn) => turn.usage.cost_usd != null);
      usage = {
        turns: used.length,
        input_tokens: sum("input_tokens"),
        output_tokens: sum("output_tokens"),
        cached_tokens: sum("cached_tokens"),
        cost_usd: priced ? sum("cost_usd") : null,
      };
    }
  }
  ui.sessionUsage.hidden = !usage;
  if (!usage) return;
  const count = usage.turns != null ? `${usage.turns} turn${usage.turns === 1 ? "" : "s"} · ` : "";
  ui.sessionUsage.replaceChildren(
    el("span", { class: "label" }, "Session"),
    ` ${count}${usageText(usage)}`,
  );
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
  const path = sessionPath(session.id, "/turns");
  try {
    let { body } = await api("GET", `${path}?limit=200`);
    if (body.total > body.items.length) {
      ({ body } = await api("GET", `${path}?limit=200&offset=${body.total - 200}`));
    }
    turns = body.items;
    renderTurns(turns.filter((turn) => !live || turn.id !== live.turnId));
    renderSessionUsage();
  } catch (error) {
    report(error);
  }
}

function renderTurns(shown) {
  ui.turnsEmpty.hidden = shown.length > 0;
  ui.turnList.replaceChildren(...shown.map(renderTurn));
}

function renderTurn(turn) {
  const cost = turn.usage && turn.usage.cost_usd != null ? costText(turn.usage.cost_usd) : "";
  const summary = el(
    "summary",
    {},
    el("span", { class: "turn-number" }, `#${turn.number}`),
    " ",
    el("span", { class: `badge badge-${turn.status}` }, turn.status),
    " ",
    el("span", { class: "muted small" }, when(turn.started_at)),
    cost ? el("span", { class: "muted small turn-cost" }, ` · ${cost}`) : null,
    " ",
    el("span", { class: "turn-prompt" }, excerpt(turn.prompt, 90)),
  );
  const transcript = el("div", { class: "transcript", "aria-live": "off" });
  const body = el("div", { class: "turn-body" }, transcript);
  if (turn.error_code || turn.error_message) {
    const code = turn.error_code ? `${turn.error_code}: ` : "";
    body.append(el("p", { class: "error" }, `${code}${turn.error_message || ""}`));
  }
  const details = el("details", { "data-turn-id": turn.id }, summary, body);
  details.addEventListener("toggle", () => {
    if (details.open) {
      openTurns.add(turn.id);
      showTurnItems(turn, transcript);
    } else {
      openTurns.delete(turn.id);
    }
  });
  if (openTurns.has(turn.id)) details.open = true; // the toggle event draws it
  return el("li", {}, details);
}

async function showTurnItems(turn, transcript) {
  if (transcript.dataset.state) return; // drawn or being read
  transcript.dataset.state = "loading";
  transcript.replaceChildren(el("p", { class: "muted" }, "Reading the turn…"));
  try {
    let items = turnItems.get(turn.id);
    if (!items) {
      items = await readTurnItems(turn);
      turnItems.set(turn.id, items);
    }
    new TurnView(transcript, items);
    transcript.dataset.state = "shown";
  } catch (error) {
    transcript.dataset.state = "";
    transcript.replaceChildren(
      el("p", { class: "prompt-echo" }, el("span", { class: "label" }, "Prompt"), " ", turn.prompt),
      el("p", { class: "error" }, `Its items could not be read: ${error.message}`),
    );
  }
}

// A turn's items from the items route; a gateway without that route yet: from its events
// (a finished turn's stream replays and closes).
async function readTurnItems(turn) {
  try {
    const { body } = await api("GET", sessionPath(turn.session_id, `/turns/${turn.id}/items`));
    return normalizeItems(body.items);
  } catch (error) {
    if (!(error instanceof ApiError) || (error.status !== 404 && error.status !== 405)) {
      throw error;
    }
  }
  const items = [userItem(turn.prompt)];
  const url = apiUrl(eventsPath({ sessionId: turn.session_id, turnId: turn.id }));
  const response = await fetch(url, { headers: headers({ Accept: "text/event-stream" }) });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let ended = false;
  const feed = sseParser((name, _id, raw) => {
    applyEvent(items, name, parseData(raw));
    if (TERMINAL.has(name)) ended = true;
  });
  while (!ended) {
    const { value, done } = await reader.read();
    if (done) break;
    feed(decoder.decode(value, { stream: true }));
  }
  reader.cancel().catch(() => {});
  return items;
}

function parseData(raw) {
  try {
    return JSON.parse(raw) || {};
  } catch {
    return {};
  }
}

// --- The current turn ----------------------------------------------------------------------

function newLive(fields) {
  const state = {
    sessionId: null,
    turnId: null,
    eventsUrl: null,
    token: null,
    prompt: "",
    lastEventId: 0,
    items: null,
    state: "running",
    note: "",
    done: false,
    permission: null, // the request the agent waits on (turn.permission_requested data)
    startedAt: Date.now(),
    ...fields,
  };
  if (!state.eventsUrl && state.turnId) state.eventsUrl = eventsPath(state);
  if (!state.items) state.items = [userItem(state.prompt, fields.images)];
  delete state.images;
  return state;
}

function eventsPath({ sessionId, turnId }) {
  return `/sessions/${encodeURIComponent(sessionId)}/turns/${encodeURIComponent(turnId)}/events`;
}

function showLive(state) {
  if (liveView) liveView.stop();
  live = state;
  ui.live.hidden = false;
  liveView = new TurnView(ui.liveTranscript, live.items);
  ui.liveTranscript.dataset.turnId = state.turnId || "";
  showPermission();
  renderStatus();
  updateButtons();
}

function stopLive() {
  closeConnection();
  if (liveView) liveView.stop();
  live = null;
  liveView = null;
  ui.live.hidden = true;
  ui.liveTranscript.replaceChildren();
  ui.liveTranscript.dataset.turnId = "";
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

function handleEvent(name, id, raw) {
  if (!live || live.done) return;
  if (name !== "gateway.shutdown" && id !== null && id !== undefined && id !== "") {
    const seq = Number.parseInt(id, 10);
    if (seq <= live.lastEventId) return; // already shown (a replay overlapping a resume)
    live.lastEventId = seq;
  }
  const data = parseData(raw);
  retryDelay = 1000;
  if (live.note.endsWith("reconnecting…")) live.note = "";
  liveView.changed(applyEvent(live.items, name, data));
  switch (name) {
    case "turn.started":
      live.state = "running";
      live.note = "";
      break;
    case "turn.queued":
      live.state = "queued";
      break;
    case "agent.created":
      refreshSessionHead();
      break;
    case "text":
      if (live.state === "queued") live.state = "running";
      break;
    case "turn.cancelling":
      live.note = data.detail || "stopping…";
      break;
    case "turn.permission_requested":
      live.state = "waiting_permission";
      live.permission = data;
      showPermission();
      break;
    case "turn.permission_resolved":
      live.state = "running";
      live.permission = null;
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
    const path = sessionPath(session.id, `/permissions/${encodeURIComponent(asked.permission_id)}`);
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
  liveView.flush();
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
    const { body } = await api("GET", sessionPath(session.id));
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
  try {
    sessionStorage.setItem(RUN_STORE, JSON.stringify(live));
  } catch {
    // Too big for storage: keep where to reconnect; a reload reads the items so far.
    const slim = { ...live, items: null, lastEventId: 0 };
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

// --- Images for the next prompt ------------------------------------------------------------

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.addEventListener("load", () => resolve(String(reader.result)));
    reader.addEventListener("error", () => reject(reader.error));
    reader.readAsDataURL(file);
  });
}

// Why `file` cannot go with the prompt (the API's own limits), or "" when it can.
function imageRefusal(file, name) {
  if (!IMAGE_TYPES.has(file.type)) {
    const type = file.type || "an unknown type";
    return `${name} is ${type}: only PNG, JPEG, GIF and WebP images can be sent.`;
  }
  if (file.size > MAX_IMAGE_BYTES) {
    return `${name} is ${bytesText(file.size)}: each image may be at most 5 MiB.`;
  }
  if (images.length >= MAX_IMAGES) {
    return `${name} was left out: a prompt takes at most ${MAX_IMAGES} images.`;
  }
  const total = images.reduce((sum, image) => sum + image.bytes, 0);
  if (total + file.size > MAX_IMAGES_TOTAL_BYTES) {
    return `${name} was left out: a prompt's images may total 20 MiB at most.`;
  }
  return "";
}

async function addImages(files) {
  const refused = [];
  for (const file of files) {
    const name = file.name || "The pasted image";
    const refusal = imageRefusal(file, name);
    if (refusal) {
      refused.push(refusal);
      continue;
    }
    try {
      const url = await readAsDataUrl(file);
      images.push({ name, media_type: file.type, bytes: file.size, url });
    } catch (error) {
      refused.push(`${name} could not be read: ${error.message}`);
    }
  }
  ui.imageError.textContent = refused.join(" ");
  ui.imageError.hidden = refused.length === 0;
  renderImages();
}

function renderImages() {
  ui.imageList.hidden = images.length === 0;
  ui.imageList.replaceChildren(
    ...images.map((image, index) => {
      const remove = el("button", { type: "button", "aria-label": `Remove ${image.name}` }, "Remove");
      remove.addEventListener("click", () => {
        images.splice(index, 1);
        ui.imageError.hidden = true;
        renderImages();
      });
      return el(
        "li",
        {},
        el("img", { src: image.url, alt: `Attached: ${image.name}`, width: "64", height: "64" }),
        el("span", { class: "small" }, `${image.name} · ${bytesText(image.bytes)}`),
        remove,
      );
    }),
  );
}

function clearImages() {
  images = [];
  ui.imageError.hidden = true;
  ui.imageInput.value = "";
  renderImages();
}

// --- Sending -------------------------------------------------------------------------------

async function sendPrompt() {
  const text = ui.prompt.value;
  if (!session || !text.trim()) return;
  const sessionId = session.id;
  const sent = images.map(({ media_type, url }) => ({
    media_type,
    data: url.slice(url.indexOf(",") + 1),
  }));
  const shown = images.map(({ media_type, bytes }) => ({ media_type, bytes }));
  showAlert("");
  closeConnection();
  showLive(newLive({ sessionId, prompt: text, state: "sending", images: shown }));
  const body = { prompt: text };
  if (sent.length) body.images = sent;
  let response;
  try {
    response = await fetch(apiUrl(sessionPath(sessionId, "/prompt")), {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
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
  clearImages();
  live.turnId = response.headers.get("X-Turn-Id");
  live.eventsUrl = response.headers.get("Content-Location");
  live.token = response.headers.get("X-Stream-Token");
  live.state = "running";
  ui.liveTranscript.dataset.turnId = live.turnId || "";
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
    const { status, body } = await api("POST", sessionPath(live.sessionId, "/cancel"));
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
  if (await loadSessions()) {
    ui.noSession.textContent = "Create a session or open one.";
    loadPickers();
    loadWebhooks();
    loadUsage();
  }
});
ui.forgetKey.addEventListener("click", () => {
  apiKey = "";
  ui.key.value = "";
  localStorage.removeItem(KEY_STORE);
  stopLive();
  session = null;
  turns = [];
  ui.sessionView.hidden = true;
  ui.noSession.hidden = false;
  renderSessions([]);
  renderWebhooks([]);
  renderUsage([]);
  ui.webhooksNote.textContent = "";
});
ui.refreshWebhooks.addEventListener("click", loadWebhooks);
ui.refreshUsage.addEventListener("click", loadUsage);
ui.createForm.addEventListener("submit", (event) => {
  event.preventDefault();
  createSession();
});
ui.newProvider.addEventListener("change", renderModelAndModePickers);
ui.sessionMode.addEventListener("change", changeMode);
ui.refresh.addEventListener("click", () => {
  loadSessions();
  loadTurns();
  loadPickers();
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
ui.prompt.addEventListener("paste", (event) => {
  const files = [...(event.clipboardData ? event.clipboardData.files : [])];
  if (!files.length) return;
  event.preventDefault(); // a pasted image goes with the prompt, not into its text
  addImages(files);
});
ui.imageInput.addEventListener("change", () => {
  addImages([...ui.imageInput.files]);
  ui.imageInput.value = "";
});
ui.cancel.addEventListener("click", cancelTurn);
window.addEventListener("pagehide", () => {
  clearTimeout(saveTimer);
  saveLive();
});

// A running turn's items so far and the last event they fold (read with its stream token);
// if that fails, the stream replays from its start.
async function itemsSoFar(saved) {
  try {
    const path = sessionPath(saved.sessionId, `/turns/${encodeURIComponent(saved.turnId)}/items`);
    const url = apiUrl(path);
    url.searchParams.set("token", saved.token);
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    const body = await response.json();
    const lastEventId = Math.max(0, ...body.items.map((item) => Number(item.last_seq) || 0));
    return { items: normalizeItems(body.items), lastEventId };
  } catch {
    return { items: [userItem(saved.prompt)], lastEventId: 0 };
  }
}

async function start() {
  updateButtons();
  renderProviderPicker();
  if (!apiKey) {
    // Nothing is asked of the API before there is a key to ask with.
    ui.noSession.textContent = "Paste an API key above to begin.";
    ui.key.focus();
    return;
  }
  const ok = await loadSessions();
  if (!ok) return;
  ui.noSession.textContent = "Create a session or open one.";
  loadPickers();
  loadWebhooks();
  loadUsage();
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(RUN_STORE) || "null");
  } catch {
    saved = null;
  }
  if (saved && saved.sessionId && saved.turnId && saved.token) {
    if (!Array.isArray(saved.items)) Object.assign(saved, await itemsSoFar(saved));
    const note = `resumed after a reload, from event ${Number(saved.lastEventId) || 0}`;
    await openSession(saved.sessionId, newLive({ ...saved, done: false, note }));
    return;
  }
  const wanted = new URLSearchParams(window.location.hash.slice(1)).get("session");
  if (wanted) await openSession(wanted);
}

start();
