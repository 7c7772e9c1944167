// A turn as a list of items (the shapes of GET /sessions/{id}/turns/{turn_id}/items), built
// from its events as they stream in or read back, and drawn as DOM nodes: the prompt, the
// answer as Markdown, each tool call folded with its command, output or diff, the latest todo
// list, the thinking folded once, the agent's questions, notices and the turn's usage.
// All text reaches the page as text nodes or through the Markdown renderer's DOM nodes.

import { renderMarkdown, safeHref } from "./markdown.js";

export const TERMINAL = new Set([
  "turn.completed",
  "turn.failed",
  "turn.cancelled",
  "turn.timed_out",
  "turn.permission", // ended turns stored before a permission became an event
  "turn.interrupted",
]);
// How long text may wait before the answer is drawn again (a stream sends many small deltas).
const RENDER_DELAY_MS = 60;
const SUBJECT_CHARS = 120;

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

export function excerpt(text, size) {
  const flat = String(text || "")
    .replace(/\s+/g, " ")
    .trim();
  return flat.length > size ? `${flat.slice(0, size - 1)}…` : flat;
}

function count(value) {
  return Number(value).toLocaleString("en");
}

export function bytesText(size) {
  if (size == null) return "";
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

export function costText(cost) {
  const usd = Number(cost);
  return `$${usd.toFixed(usd >= 1 || usd === 0 ? 2 : 4)}`;
}

/** Tokens and cost in a line: "1,024 in · 96 out · 12 cached · $0.0123". */
export function usageText(usage) {
  if (!usage) return "";
  const parts = [];
  if (usage.input_tokens != null) parts.push(`${count(usage.input_tokens)} tokens in`);
  if (usage.output_tokens != null) parts.push(`${count(usage.output_tokens)} out`);
  if (usage.cached_tokens) parts.push(`${count(usage.cached_tokens)} cached`);
  if (usage.cost_usd != null) parts.push(costText(usage.cost_usd));
  if (usage.context_window_used_tokens != null && usage.context_window_max_tokens) {
    const used = count(usage.context_window_used_tokens);
    parts.push(`context ${used} of ${count(usage.context_window_max_tokens)}`);
  }
  return parts.join(" · ");
}

// --- The model: items from events ----------------------------------------------------------

export function userItem(prompt, images) {
  const item = { type: "message", role: "user", content: [{ type: "input_text", text: prompt }] };
  if (images && images.length) item.images = images;
  return item;
}

function textOf(item) {
  return (item.content || []).map((part) => part.text || "").join("");
}

function push(items, item) {
  items.push(item);
  return items.length - 1;
}

function indexOf(items, test) {
  return items.findIndex(test);
}

function appendAnswer(items, delta) {
  const last = items[items.length - 1];
  if (last && last.type === "message" && last.role === "assistant") {
    last.content = [{ type: "output_text", text: textOf(last) + delta }];
    return items.length - 1;
  }
  return push(items, { type: "message", role: "assistant", content: [{ type: "output_text", text: delta }] });
}

// One item of a kind the page shows once (thinking, todo list, usage): replaced or merged.
function keepOne(items, type, merge) {
  const at = indexOf(items, (item) => item.type === type);
  if (at < 0) return push(items, merge(null));
  items[at] = merge(items[at]);
  return at;
}

function toolItem(data) {
  return {
    type: "tool_call",
    call_id: data.call_id,
    name: data.name,
    kind: data.kind,
    status: data.status,
    detail: data.detail || {},
    error: data.error ?? null,
  };
}

function mergeTool(items, item) {
  const at = item.call_id
    ? indexOf(items, (old) => old.type === "tool_call" && old.call_id === item.call_id)
    : -1;
  if (at < 0) return push(items, item);
  const old = items[at];
  items[at] = { ...old, ...item, detail: { ...(old.detail || {}), ...(item.detail || {}) } };
  return at;
}

/** Apply one stream event to `items`; the index of the item it added or changed, or -1. */
export function applyEvent(items, name, data) {
  switch (name) {
    case "turn.started": {
      const at = indexOf(items, (item) => item.type === "message" && item.role === "user");
      if (at < 0 || !(data.images && data.images.length)) return -1;
      items[at] = { ...items[at], images: data.images };
      return at;
    }
    case "text":
      return appendAnswer(items, String(data.delta || ""));
    case "reasoning": {
      const delta = String(data.delta || "");
      return keepOne(items, "reasoning", (old) => ({
        type: "reasoning",
        text: (old ? old.text : "") + delta,
      }));
    }
    case "tool":
      return mergeTool(items, toolItem(data));
    case "todo":
      return keepOne(items, "todo", () => ({
        type: "todo",
        items: data.items ?? null,
        completed: data.completed,
        total: data.total,
      }));
    case "notice":
      return push(items, { type: "notice", kind: data.kind, text: data.text });
    case "turn.permission_requested":
      return push(items, { type: "permission_request", ...data, resolution: null });
    case "turn.permission_resolved": {
      const at = indexOf(
        items,
        (item) => item.type === "permission_request" && item.permission_id === data.permission_id,
      );
      if (at < 0) return -1;
      const { behavior, by, message } = data;
      items[at] = { ...items[at], resolution: { behavior, by, message: message ?? null } };
      return at;
    }
    default:
      if (TERMINAL.has(name) && data.usage) {
        return keepOne(items, "usage", () => ({ type: "usage", ...data.usage }));
      }
      return -1;
  }
}

/** The items route's list, shown as the live view shows a turn: one thinking block, the
 * latest todo list and one item per tool call (merged if a call came in several). */
export function normalizeItems(raw) {
  const items = [];
  for (const item of raw || []) {
    if (item.type === "reasoning") {
      keepOne(items, "reasoning", (old) => ({
        type: "reasoning",
        text: old ? `${old.text}\n\n${item.text || ""}` : item.text || "",
      }));
    } else if (item.type === "todo" || item.type === "usage") {
      keepOne(items, item.type, () => ({ ...item }));
    } else if (item.type === "tool_call") {
      mergeTool(items, { ...item });
    } else {
      items.push(item);
    }
  }
  return items;
}

/** The answer's Markdown as streamed: every assistant message's text, in order. */
export function answerText(items) {
  return items
    .filter((item) => item.type === "message" && item.role === "assistant")
    .map(textOf)
    .join("");
}

// --- Drawing items -------------------------------------------------------------------------

function renderUser(item) {
  const node = el(
    "div",
    { class: "msg-user" },
    el("span", { class: "label" }, "Prompt"),
    el("p", { class: "prompt-text" }, textOf(item)),
  );
  if (item.images && item.images.length) {
    node.append(
      el(
        "ul",
        { class: "image-chips", "aria-label": "Images sent with the prompt" },
        ...item.images.map((image) =>
          el("li", {}, `${image.media_type || "image"} ${bytesText(image.bytes)}`.trim()),
        ),
      ),
    );
  }
  return node;
}

function renderAnswer(item) {
  const text = textOf(item);
  const node = el("div", { class: "md answer-part" }, renderMarkdown(text));
  node.dataset.source = text;
  return node;
}

function renderThinking(item) {
  const words = item.text.trim() ? item.text.trim().split(/\s+/).length : 0;
  return el(
    "details",
    { class: "thinking" },
    el("summary", {}, `Thinking (${count(words)} words)`),
    el("div", { class: "thinking-text" }, item.text),
  );
}

function diffLineClass(line) {
  if (line.startsWith("+++") || line.startsWith("---")) return "diff-file";
  if (line.startsWith("diff ") || line.startsWith("index ")) return "diff-meta";
  if (line.startsWith("@@")) return "diff-hunk";
  if (line.startsWith("+")) return "diff-add";
  if (line.startsWith("-")) return "diff-del";
  return "diff-context";
}

/** A unified diff, one coloured line each (added, removed, hunk header, context). */
export function renderDiff(text) {
  const lines = String(text).replace(/\n$/, "").split("\n");
  return el(
    "pre",
    { class: "diff" },
    ...lines.map((line) => el("span", { class: diffLineClass(line) }, `${line}\n`)),
  );
}

function stringsDiff(oldText, newText) {
  const side = (text, mark) =>
    text == null
      ? []
      : String(text)
          .split("\n")
          .map((line) => `${mark}${line}`);
  return [...side(oldText, "-"), ...side(newText, "+")].join("\n");
}

function field(label, ...value) {
  return el("p", { class: "tool-field" }, el("span", { class: "label" }, label), " ", ...value);
}

function errorText(error) {
  if (error == null || error === "") return "";
  return typeof error === "string" ? error : JSON.stringify(error);
}

function toolBody(item) {
  const detail = item.detail || {};
  const body = [];
  if (detail.command != null) {
    body.push(el("pre", { class: "tool-command" }, `$ ${detail.command}`));
  }
  if (detail.cwd) body.push(field("In", el("code", {}, detail.cwd)));
  if (detail.path) body.push(field("File", el("code", {}, detail.path)));
  if (detail.query != null) body.push(field("Query", el("code", {}, detail.query)));
  if (detail.url) {
    const href = safeHref(detail.url);
    const target = href
      ? el("a", { href, rel: "noopener noreferrer nofollow", target: "_blank" }, detail.url)
      : el("code", {}, detail.url);
    body.push(field("URL", target));
  }
  if (detail.diff) body.push(renderDiff(detail.diff));
  else if (detail.old_string != null || detail.new_string != null) {
    body.push(renderDiff(stringsDiff(detail.old_string, detail.new_string)));
  }
  if (detail.content != null && detail.content !== "") {
    body.push(el("pre", { class: "tool-output" }, detail.content));
  }
  if (detail.output != null && detail.output !== "") {
    body.push(el("pre", { class: "tool-output" }, detail.output));
  }
  if (detail.exit_code != null) {
    const failed = Number(detail.exit_code) !== 0;
    body.push(el("p", { class: failed ? "error" : "muted" }, `Exit code ${detail.exit_code}`));
  }
  if (detail.truncated) body.push(el("p", { class: "muted" }, "Cut at 64 KiB per field."));
  const error = errorText(item.error);
  if (error) body.push(el("p", { class: "error tool-error" }, error));
  if (!body.length) {
    body.push(el("p", { class: "muted" }, "No details: only its name and status are known."));
  }
  return body;
}

function renderTool(item) {
  const detail = item.detail || {};
  const status = item.status || "unknown";
  const subject = detail.command || detail.path || detail.query || detail.url || "";
  const error = errorText(item.error);
  const summary = el(
    "summary",
    {},
    el("span", { class: `badge badge-${status}` }, status),
    " ",
    el("span", { class: "tool-name" }, item.name || "tool"),
    item.kind && item.kind !== item.name ? el("span", { class: "muted" }, ` ${item.kind}`) : null,
    subject ? " " : null,
    subject ? el("code", { class: "tool-subject" }, excerpt(subject, SUBJECT_CHARS)) : null,
    error ? el("span", { class: "error" }, ` — ${excerpt(error, SUBJECT_CHARS)}`) : null,
  );
  const node = el(
    "details",
    { class: "tool", "data-kind": item.kind || "other", "data-status": status },
    summary,
    el("div", { class: "tool-body" }, ...toolBody(item)),
  );
  if (item.call_id) node.dataset.callId = item.call_id;
  return node;
}

function renderTodo(item) {
  const heading = `Tasks: ${item.completed ?? 0} of ${item.total ?? 0} done`;
  const node = el("section", { class: "todo", "aria-label": "The agent's task list" });
  node.append(el("p", { class: "todo-head" }, heading));
  if (Array.isArray(item.items)) {
    node.append(
      el(
        "ul",
        {},
        ...item.items.map((task) =>
          el("li", { "data-done": task.done ? "true" : "false" }, task.text || ""),
        ),
      ),
    );
  }
  return node;
}

function resolutionText(resolution) {
  if (!resolution) return "Waiting for an answer.";
  const said = resolution.message ? `: ${resolution.message}` : "";
  return `${resolution.behavior === "allow" ? "Allowed" : "Denied"} by ${resolution.by || "?"}${said}`;
}

function renderPermission(item) {
  const node = el(
    "div",
    { class: "permission-item", "data-permission-id": item.permission_id || "" },
    el("p", {}, el("span", { class: "label" }, "Asked"), " ", item.title || item.name || "permission"),
  );
  if (item.description) node.append(el("p", { class: "muted" }, item.description));
  node.append(el("p", { class: "permission-resolution" }, resolutionText(item.resolution)));
  return node;
}

function renderItem(item) {
  switch (item.type) {
    case "message":
      return item.role === "user" ? renderUser(item) : renderAnswer(item);
    case "reasoning":
      return renderThinking(item);
    case "tool_call":
      return renderTool(item);
    case "todo":
      return renderTodo(item);
    case "permission_request":
      return renderPermission(item);
    case "notice":
      return el("p", { class: "notice" }, `${item.kind || "notice"}: ${item.text || ""}`);
    case "usage":
      return el("p", { class: "turn-usage" }, el("span", { class: "label" }, "Usage"), " ", usageText(item));
    default:
      return el("span", { hidden: "" });
  }
}

/** A turn's items drawn into `container`; `changed(index)` redraws one soon (batched). */
export class TurnView {
  constructor(container, items) {
    this.container = container;
    this.items = items;
    this.nodes = items.map(renderItem);
    this.dirty = new Set();
    this.timer = null;
    container.replaceChildren(...this.nodes);
  }

  changed(index) {
    if (index < 0) return;
    this.dirty.add(index);
    if (this.timer === null) this.timer = setTimeout(() => this.flush(), RENDER_DELAY_MS);
  }

  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const root = document.documentElement;
    const atBottom = window.innerHeight + window.scrollY >= root.scrollHeight - 80;
    for (const index of [...this.dirty].sort((a, b) => a - b)) {
      const old = this.nodes[index];
      const node = renderItem(this.items[index]);
      if (old && old.tagName === "DETAILS" && node.tagName === "DETAILS") node.open = old.open;
      if (old) old.replaceWith(node);
      else this.container.append(node);
      this.nodes[index] = node;
    }
    this.dirty.clear();
    if (atBottom) window.scrollTo(0, root.scrollHeight);
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}
