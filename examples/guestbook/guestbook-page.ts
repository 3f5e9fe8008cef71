// The guestbook's one HTML page: the entries, newest first, and a form that posts a new one.

import type { GuestbookEntry } from "./guestbook-db.js";

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

export interface GuestbookPageOptions {
  readonly entries: readonly GuestbookEntry[];
  /** Which node served the page (shown so that a demo shows where a read landed). */
  readonly nodeName: string | undefined;
  readonly writable: boolean;
}

export function renderGuestbookPage(opts: GuestbookPageOptions): string {
  const items = opts.entries
    .map(
      (e) =>
        `<li><strong>${escapeHtml(e.name)}</strong> <time>${escapeHtml(e.createdAt)}</time>` +
        `<p>${escapeHtml(e.message)}</p></li>`,
    )
    .join("\n");
  const node = opts.nodeName === undefined ? "" : ` — served by <code>${escapeHtml(opts.nodeName)}</code>`;
  const role = opts.writable
    ? ""
    : " (read-only database: writes go through the LiteFS proxy to the primary)";
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Guestbook</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.5em 0}time{color:#777;font-size:.8em}</style>
</head>
<body>
<h1>Guestbook</h1>
<p>${opts.entries.length} entries${node}${role}</p>
<form method="post" action="/">
<input name="name" placeholder="Your name" maxlength="100" required>
<input name="message" placeholder="Say something" maxlength="1000" required size="40">
<button type="submit">Sign</button>
</form>
<ul>
${items}
</ul>
</body>
</html>
`;
}
