// The guestbook as a program: `node dist/examples/guestbook/main.js [options]`, options from the
// command line or the environment (the flag wins):
//   --db PATH              DATABASE_PATH       the SQLite database (required)
//   --port N               PORT                default 8081; 0 picks a free port
//   --host H               HOST                default 127.0.0.1
//   --journal-mode M       JOURNAL_MODE        delete | truncate | persist | wal (default: leave as is)
//   --busy-timeout MS      BUSY_TIMEOUT_MS     default 5000
//   --readonly             DATABASE_READONLY=1 open read-only (as a replica)
//   --name NAME            NODE_NAME           shown on the page
// Prints one line "guestbook: listening on http://HOST:PORT …" once it accepts connections; stops
// cleanly on SIGINT/SIGTERM.

import { parseArgs } from "node:util";

import { GuestbookDb, JOURNAL_MODES, type JournalMode } from "./guestbook-db.js";
import { createGuestbookServer, listenGuestbook } from "./guestbook-server.js";

function fail(message: string): never {
  process.stderr.write(`guestbook: ${message}\n`);
  process.exit(2);
}

function main(): void {
  const { values } = parseArgs({
    options: {
      db: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "journal-mode": { type: "string" },
      "busy-timeout": { type: "string" },
      readonly: { type: "boolean" },
      name: { type: "string" },
    },
    strict: true,
  });
  const env = process.env;
  const path = values.db ?? env.DATABASE_PATH;
  if (path === undefined || path === "") fail("no database: pass --db PATH or set DATABASE_PATH");
  const port = Number(values.port ?? env.PORT ?? "8081");
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port "${values.port ?? env.PORT}"`);
  const host = values.host ?? env.HOST ?? "127.0.0.1";
  const modeText = (values["journal-mode"] ?? env.JOURNAL_MODE)?.toLowerCase();
  if (modeText !== undefined && !JOURNAL_MODES.includes(modeText as JournalMode)) {
    fail(`bad journal mode "${modeText}": one of ${JOURNAL_MODES.join(", ")}`);
  }
  const busyTimeoutMs = Number(values["busy-timeout"] ?? env.BUSY_TIMEOUT_MS ?? "5000");
  if (!Number.isInteger(busyTimeoutMs) || busyTimeoutMs < 0) fail("bad busy timeout");
  const readOnly = values.readonly === true || env.DATABASE_READONLY === "1";

  let db: GuestbookDb;
  try {
    db = new GuestbookDb({ path, journalMode: modeText as JournalMode | undefined, busyTimeoutMs, readOnly });
  } catch (err) {
    fail(`cannot open ${path}: ${(err as Error).message}`);
  }
  const server = createGuestbookServer({ db, nodeName: values.name ?? env.NODE_NAME });
  const stop = (): void => {
    server.closeAllConnections();
    server.close(() => {
      db.close();
      process.exit(0);
    });
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  listenGuestbook(server, host, port).then(
    (address) => {
      const state = db.writable
        ? `writable, journal_mode=${db.journalMode()}`
        : db.opened
          ? "read-only"
          : "read-only: not there yet, opened when it arrives";
      process.stdout.write(`guestbook: listening on http://${host}:${address.port} (db ${path}, ${state})\n`);
    },
    (err: unknown) => fail(`cannot listen on ${host}:${port}: ${(err as Error).message}`),
  );
}

main();
