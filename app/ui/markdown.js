// A small, safe Markdown subset for the agent's answers: headings, paragraphs, bold, italic,
// strikethrough, inline code, fenced code blocks, lists (nested, ordered or not), block
// quotes, rules and links (http and https only). It builds DOM nodes and text nodes: no
// string of the agent's ever reaches innerHTML, so nothing in it can become markup or script.
// Anything outside the subset shows as the text it is.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])([ \t]+|$)(.*)$/;
const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/;
const BARE_URL = /^https?:\/\/[^\s<>"]*[^\s<>".,:;!?'")\]]/;
const WORD = /[\p{L}\p{N}]/u;
// Headings of an answer sit below the page's own (h1 page, h2 session, h3 section).
const HEADING_OFFSET = 3;

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** The link target if it is an absolute http(s) URL, else null (javascript:, data:, …). */
export function safeHref(raw) {
  try {
    const url = new URL(raw.trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, children) {
  const node = el("a", null, ...children);
  node.setAttribute("href", href);
  node.setAttribute("rel", "noopener noreferrer nofollow");
  node.setAttribute("target", "_blank");
  return node;
}

// --- Inline: code spans, links, emphasis ---------------------------------------------------

// Where the delimiter `delim` that closes an emphasis opened before `from` is, or -1; code
// spans and escapes in between are skipped, so `**a `*` b**` closes at the last `**`.
function findCloser(text, from, delim) {
  const mark = delim[0];
  let i = from;
  while (i < text.length) {
    const char = text[i];
    if (char === "\\") {
      i += 2;
      continue;
    }
    if (char === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const close = text.indexOf(run, i + run.length);
      i = close < 0 ? i + run.length : close + run.length;
      continue;
    }
    if (char === mark) {
      let run = 1;
      while (text[i + run] === mark) run += 1;
      if ((run === delim.length || run === 3) && i > from && !/\s/.test(text[i - 1])) {
        const at = delim.length === 2 && run === 3 ? i + 1 : i; // `***` closes `*` then `**`
        if (mark !== "_" || !WORD.test(text[at + delim.length] || "")) return at;
      }
      i += run;
      continue;
    }
    i += 1;
  }
  return -1;
}

// `[label](url)` at text[i]: {label, url, end} or null.
function linkAt(text, i) {
  let depth = 0;
  let j = i;
  for (; j < text.length; j += 1) {
    if (text[j] === "\\") j += 1;
    else if (text[j] === "[") depth += 1;
    else if (text[j] === "]" && --depth === 0) break;
  }
  if (j >= text.length || text[j + 1] !== "(") return null;
  const target = /^\(\s*<?([^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*)>?(?:\s+"[^"]*")?\s*\)/.exec(
    text.slice(j + 1),
  );
  if (!target) return null;
  return { label: text.slice(i + 1, j), url: target[1], end: j + 1 + target[0].length };
}

function canOpen(text, i, delim) {
  const after = text[i + delim.length];
  if (after === undefined || /\s/.test(after)) return false;
  return delim[0] !== "_" || i === 0 || !WORD.test(text[i - 1]);
}

export function renderInline(text) {
  const out = [];
  let plain = "";
  const flush = () => {
    if (plain) out.push(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    const rest = text.slice(i);
    if (char === "\\" && PUNCTUATION.test(text[i + 1] || "")) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (char === "\\" && text[i + 1] === "\n") {
      flush();
      out.push(el("br"));
      i += 2;
      continue;
    }
    if (char === "`") {
      const run = /^`+/.exec(rest)[0];
      const close = text.indexOf(run, i + run.length);
      if (close > 0 && text[close + run.length] !== "`") {
        let code = text.slice(i + run.length, close).replace(/\n/g, " ");
        if (/^ .*[^ ].* $/.test(code)) code = code.slice(1, -1);
        flush();
        out.push(el("code", null, code));
        i = close + run.length;
      } else {
        plain += run;
        i += run.length;
      }
      continue;
    }
    if (char === "[") {
      const found = linkAt(text, i);
      if (found) {
        const href = safeHref(found.url);
        flush();
        const label = renderInline(found.label);
        // A link elsewhere than the web (javascript:, file:, a relative path) stays text.
        out.push(href ? link(href, label) : el("span", "md-nolink", ...label));
        i = found.end;
        continue;
      }
    }
    if (char === "<") {
      const auto = /^<(https?:\/\/[^\s<>]+)>/.exec(rest);
      const href = auto && safeHref(auto[1]);
      if (href) {
        flush();
        out.push(link(href, [auto[1]]));
        i += auto[0].length;
        continue;
      }
    }
    if (char === "h" && (i === 0 || /[\s(]/.test(text[i - 1]))) {
      const bare = BARE_URL.exec(rest);
      const href = bare && safeHref(bare[0]);
      if (href) {
        flush();
        out.push(link(href, [bare[0]]));
        i += bare[0].length;
        continue;
      }
    }
    if (char === "*" || char === "_" || char === "~") {
      const double = text[i + 1] === char;
      const tried = char === "~" ? (double ? ["~~"] : []) : double ? [char + char, char] : [char];
      let done = false;
      for (const delim of tried) {
        if (!canOpen(text, i, delim)) continue;
        const close = findCloser(text, i + delim.length, delim);
        if (close < 0) continue;
        const tag = delim === "~~" ? "del" : delim.length === 2 ? "strong" : "em";
        flush();
        out.push(el(tag, null, ...renderInline(text.slice(i + delim.length, close))));
        i = close + delim.length;
        done = true;
        break;
      }
      if (done) continue;
      const run = new RegExp(`^\\${char}+`).exec(rest)[0];
      plain += run;
      i += run.length;
      continue;
    }
    plain += char;
    i += 1;
  }
  flush();
  return out;
}

// --- Blocks --------------------------------------------------------------------------------

function indentOf(line) {
  return /^ */.exec(line.replace(/\t/g, "    "))[0].length;
}

function dedent(line, count) {
  const expanded = line.replace(/^\t+/, (tabs) => "    ".repeat(tabs.length));
  const strip = Math.min(count, indentOf(expanded));
  return expanded.slice(strip);
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line);
}

function codeBlock(lines, language) {
  const code = el("code", null, lines.join("\n"));
  if (language) code.dataset.language = language;
  const pre = el("pre", "md-code", code);
  if (language) pre.dataset.language = language;
  return pre;
}

// One list (its items share the first item's kind): [node, the index after it].
function parseList(lines, start) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const baseIndent = first[1].length;
  const list = el(ordered ? "ol" : "ul");
  if (ordered && Number.parseInt(first[2], 10) !== 1) {
    list.setAttribute("start", String(Number.parseInt(first[2], 10)));
  }
  let i = start;
  let loose = false;
  const items = [];
  while (i < lines.length) {
    const match = LIST_ITEM.exec(lines[i]);
    if (!match || match[1].length !== baseIndent || /\d/.test(match[2]) !== ordered) break;
    const contentIndent = baseIndent + match[2].length + Math.min(match[3].length || 1, 4);
    const body = [match[4]];
    i += 1;
    let blankBefore = false;
    while (i < lines.length) {
      const line = lines[i];
      if (line.trim() === "") {
        blankBefore = true;
        body.push("");
        i += 1;
        continue;
      }
      const indent = indentOf(line);
      if (indent >= contentIndent || (indent > baseIndent && LIST_ITEM.test(line))) {
        body.push(dedent(line, Math.min(indent, contentIndent)));
      } else if (!blankBefore && !LIST_ITEM.test(line) && !startsBlock(line)) {
        body.push(line.trim()); // a lazy continuation of the item's paragraph
      } else {
        break;
      }
      blankBefore = false;
      i += 1;
    }
    while (body.length && body[body.length - 1] === "") body.pop();
    if (blankBefore && i < lines.length && LIST_ITEM.test(lines[i])) loose = true;
    items.push(body);
  }
  for (const body of items) {
    const blocks = parseBlocks(body);
    const li = el("li");
    const tight = !loose && blocks.every((node) => node.tagName !== "P" || node === blocks[0]);
    for (const node of blocks) {
      if (tight && node.tagName === "P") li.append(...node.childNodes);
      else li.append(node);
    }
    list.append(li);
  }
  return [list, i];
}

function parseBlocks(lines) {
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === "") {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const indent = indentOf(line);
      const body = [];
      i += 1;
      const closing = new RegExp(`^ {0,3}${marker[0]}{${marker.length},}\\s*$`);
      while (i < lines.length && !closing.test(lines[i])) {
        body.push(dedent(lines[i], indent));
        i += 1;
      }
      i += 1; // the closing fence (or the end: a block still streaming in)
      out.push(codeBlock(body, fence[2]));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = heading[1].length;
      const tag = `h${Math.min(6, level + HEADING_OFFSET)}`;
      out.push(el(tag, `md-h${level}`, ...renderInline(heading[2] || "")));
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      out.push(el("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && lines[i].trim() !== "") {
        const quoted = QUOTE.exec(lines[i]);
        body.push(quoted ? quoted[1] : lines[i]);
        i += 1;
      }
      out.push(el("blockquote", null, ...parseBlocks(body)));
      continue;
    }
    if (LIST_ITEM.test(line) && LIST_ITEM.exec(line)[4] !== "") {
      const [list, next] = parseList(lines, i);
      out.push(list);
      i = next;
      continue;
    }
    if (indentOf(line) >= 4) {
      const body = [];
      while (i < lines.length && (lines[i].trim() === "" || indentOf(lines[i]) >= 4)) {
        body.push(dedent(lines[i], 4));
        i += 1;
      }
      while (body.length && body[body.length - 1].trim() === "") body.pop();
      out.push(codeBlock(body, ""));
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() !== "") {
      const next = lines[i];
      if (paragraph.length && (startsBlock(next) || LIST_ITEM.test(next))) break;
      paragraph.push(next.trim());
      i += 1;
    }
    out.push(el("p", null, ...renderInline(paragraph.join("\n"))));
  }
  return out;
}

/** The Markdown `text` as a fragment of DOM nodes. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  fragment.append(...parseBlocks(String(text).replace(/\r\n?/g, "\n").split("\n")));
  return fragment;
}
