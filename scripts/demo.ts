// The README's main job: one LiteFS node on this machine, on the embedded defaults (static lease).
// It mounts a LiteFS file system in a temporary directory, writes to a SQLite database through it with
// the sqlite3 CLI in rollback-journal and WAL mode, and shows what the node captured: one LTX file per
// transaction, the position file, and a replay of the LTX chain that reproduces the database byte for
// byte. Ctrl-C (or the end of the script) unmounts and removes everything.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const cli = path.join(root, "dist", "src", "cli", "main.js");

function say(text: string): void {
  process.stdout.write(`${text}\n`);
}

function run(cmd: string, args: string[], show = true): string {
  if (show) say(`\n$ ${[path.basename(cmd), ...args].join(" ")}`);
  const res = spawnSync(cmd, args, { encoding: "utf8" });
  const out = `${res.stdout}${res.stderr}`;
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${res.status}:\n${out}`);
  if (show) process.stdout.write(out);
  return out;
}

function litefs(...args: string[]): string {
  say(`\n$ litefs ${args.join(" ")}`);
  const out = run(process.execPath, [cli, ...args], false);
  process.stdout.write(out);
  return out;
}

async function waitForReady(child: ChildProcess, logs: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`litefs mount did not get ready:\n${logs.join("")}`)),
      30_000,
    );
    const onData = (chunk: Buffer): void => {
      logs.push(chunk.toString());
      if (logs.join("").includes("mount ready")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`litefs mount exited with ${code}:\n${logs.join("")}`));
    });
  });
}

async function main(): Promise<void> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-demo-"));
  const fuseDir = path.join(base, "litefs");
  const dataDir = path.join(base, "data");
  fs.mkdirSync(fuseDir);
  const config = path.join(base, "litefs.yml");
  fs.writeFileSync(
    config,
    [
      `fuse: { dir: "${fuseDir}" }`,
      `data: { dir: "${dataDir}" }`,
      `http: { addr: "127.0.0.1:20202" }`,
      `lease: { type: static, candidate: true, hostname: "demo-primary", advertise-url: "http://127.0.0.1:20202" }`,
      "",
    ].join("\n"),
  );
  say(`LiteFS-TS demo: one primary node. Config ${config}:\n${fs.readFileSync(config, "utf8")}`);
  const logs: string[] = [];
  const node = spawn(process.execPath, [cli, "mount", "--config", config], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stop = (): void => {
    if (node.exitCode === null) node.kill("SIGTERM");
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    await waitForReady(node, logs);
    say(`node ready: ${logs.join("").trim().split("\n").pop()}`);
    const db = path.join(fuseDir, "guestbook.db");
    run("sqlite3", [
      db,
      "PRAGMA journal_mode=DELETE; CREATE TABLE entries(id INTEGER PRIMARY KEY, name TEXT, message TEXT);",
    ]);
    run("sqlite3", [
      db,
      "INSERT INTO entries(name, message) VALUES ('ada', 'hello from a rollback-journal transaction');",
    ]);
    run("sqlite3", [db, "PRAGMA journal_mode=WAL;"]);
    run("sqlite3", [
      db,
      "INSERT INTO entries(name, message) VALUES ('grace', 'hello from a WAL transaction');",
    ]);
    run("sqlite3", [
      db,
      "BEGIN; INSERT INTO entries(name, message) VALUES ('nobody', 'rolled back'); ROLLBACK;",
    ]);
    run("sqlite3", ["-box", db, "SELECT * FROM entries;"]);
    run("ls", [fuseDir]);
    run("cat", [`${db}-pos`]);
    const ltxDir = path.join(dataDir, "dbs", "guestbook.db", "ltx");
    say("\nEach committed transaction became one LTX file (the rolled-back one left none):");
    litefs("ltx", "list", ltxDir);
    litefs("ltx", "verify", ltxDir);
    run("sqlite3", [db, "PRAGMA wal_checkpoint(TRUNCATE);"], false);
    const replay = path.join(base, "replayed.db");
    fs.writeFileSync(replay, "");
    const files = fs
      .readdirSync(ltxDir)
      .filter((f) => f.endsWith(".ltx"))
      .sort()
      .map((f) => path.join(ltxDir, f));
    litefs("ltx", "apply", "--db", replay, ...files);
    const same =
      Buffer.compare(
        fs.readFileSync(replay),
        fs.readFileSync(path.join(dataDir, "dbs", "guestbook.db", "database")),
      ) === 0;
    say(
      `\nReplaying the LTX chain into an empty file reproduces the database byte for byte: ${same ? "yes" : "NO"}`,
    );
    litefs("ltx", "checksum", replay);
  } finally {
    stop();
    await new Promise((resolve) =>
      node.exitCode === null ? node.once("exit", resolve) : resolve(undefined),
    );
    spawnSync("umount", ["-l", fuseDir]);
    fs.rmSync(base, { recursive: true, force: true });
    say("\nnode stopped, mount removed.");
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
