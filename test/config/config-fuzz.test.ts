// Seeded fuzzing of the config parser (fast-check; FC_SEED replays a run, CONFIG_FUZZ_SCALE=20 runs longer): random YAML documents,
// valid configs with one leaf mutated (wrong types, unknown keys, bad durations, URLs, ports, empty
// values), random text, and `$VAR` expansion edge cases. Whatever the input, parseConfig either returns
// a Config or throws a ConfigError whose every issue names the file and a line inside it (and, for a
// value that breaks the schema, the key) — never another exception type. Valid configs round-trip:
// each written value comes back in the Config it meant.

import assert from "node:assert/strict";
import { test } from "node:test";

import fc from "fast-check";
import { stringify } from "yaml";

import { ConfigError } from "../../src/config/config-error.js";
import type { Config } from "../../src/config/config.js";
import { parseDuration } from "../../src/config/duration.js";
import { parseConfig } from "../../src/config/parse-config.js";

const FILE = "fuzz/litefs.yml";
const seed = process.env.FC_SEED === undefined ? Date.now() % 2 ** 31 : Number(process.env.FC_SEED);
/** CONFIG_FUZZ_SCALE multiplies every run count (a long run: 20). */
const scale = Math.max(1, Number(process.env.CONFIG_FUZZ_SCALE ?? 1));
const runs = (n: number): fc.Parameters<unknown> => ({
  seed,
  numRuns: n * scale,
  endOnFailure: true,
  includeErrorInReport: true,
});

type Outcome = { ok: true; config: Config } | { ok: false; error: ConfigError };

/**
 * Parses `text` and checks the contract on failure: a ConfigError (nothing else), every issue in this
 * file at a line the text has (1-based), with a column when it has a line.
 */
function parseChecked(text: string, env: Record<string, string> = {}): Outcome {
  let config: Config;
  try {
    config = parseConfig(text, FILE, { env, hostname: "fuzz-host" });
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      assert.fail(`not a ConfigError: ${String(err)}\n${(err as Error).stack ?? ""}\n--- input ---\n${text}`);
    }
    assert.equal(err.code, "ECONFIG");
    assert.ok(err.issues.length > 0);
    const lines = text.split("\n").length;
    for (const issue of err.issues) {
      assert.equal(issue.file, FILE, err.message);
      assert.ok(
        Number.isInteger(issue.line) && issue.line! >= 1 && issue.line! <= lines + 1,
        `issue without a line in the file (${issue.line} of ${lines}): ${err.message}\n--- input ---\n${text}`,
      );
      assert.ok(Number.isInteger(issue.column) && issue.column! >= 1, err.message);
      assert.equal(typeof issue.message, "string");
      assert.ok(issue.message.length > 0);
    }
    assert.ok(err.message.includes(FILE), err.message);
    return { ok: false, error: err };
  }
  return { ok: true, config };
}

/** A valid config file as an object (kebab-case), every leaf a value the schema accepts. */
function validFile(): Record<string, unknown> {
  return {
    "exit-on-error": true,
    exec: [{ cmd: "myapp serve -addr :8081", "if-candidate": false }],
    data: { dir: "/var/lib/litefs", compress: true, retention: "10m", "retention-monitor-interval": "1m" },
    fuse: { dir: "/litefs", "allow-other": false, debug: false, "kernel-locks": false },
    http: { addr: ":20202", "snapshot-timeout": "0s", "auth-token": "sekret" },
    proxy: {
      addr: ":8080",
      target: "localhost:8081",
      db: "app.db",
      mode: "forward",
      "max-lag": "10s",
      passthrough: ["*.png"],
      "always-forward": ["/admin/*"],
      "txid-wait-timeout": "5s",
    },
    lease: {
      type: "static",
      hostname: "node1",
      "advertise-url": "http://node1:20202",
      candidate: true,
      "reconnect-delay": "1s",
      ttl: "10s",
      databases: ["app.db"],
    },
    log: { format: "json", timestamp: true, debug: false },
  };
}

/** Every leaf's key path in `value` (lists index their items). */
function leafPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => leafPaths(item, [...prefix, i]));
  if (typeof value === "object" && value !== null) {
    return Object.entries(value).flatMap(([k, v]) => leafPaths(v, [...prefix, k]));
  }
  return [prefix];
}

function formatPath(path: readonly (string | number)[]): string {
  return path.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}

function setAt(root: unknown, path: readonly (string | number)[], value: unknown): void {
  let node = root as Record<string | number, unknown>;
  for (const segment of path.slice(0, -1)) node = node[segment] as Record<string | number, unknown>;
  node[path[path.length - 1]] = value;
}

/** Values that are wrong for most leaves: other types, junk strings, bad durations, URLs, ports. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string(),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
  fc.constantFrom(
    "",
    " ",
    "10",
    "1x",
    "-5s",
    "1.5.3s",
    "9999999999999h",
    "µs",
    "ftp://x",
    "http://",
    "http://[::1",
    "://nohost",
    ":99999",
    ":-1",
    "host:port",
    "[::1]:0",
    "::::",
    "0x10",
    "1e400",
    "NaN",
    "~",
    "null",
    "yes",
    "\u0000",
    "a\nb",
    "${",
    "x".repeat(5000),
  ),
);

test(`random YAML documents: a Config or a ConfigError (seed ${seed})`, () => {
  const yamlValue = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: "small" },
      fc.jsonValue({ maxDepth: 2 }),
      fc.dictionary(
        fc.oneof(
          fc.string({ maxLength: 12 }),
          fc.constantFrom("data", "lease", "proxy", "http", "exec", "__proto__"),
        ),
        tie("node"),
        { maxKeys: 5 },
      ),
      fc.array(tie("node"), { maxLength: 4 }),
    ),
  })).node;
  const document = fc.oneof(
    yamlValue,
    fc.dictionary(
      fc.constantFrom(
        "data",
        "fuse",
        "http",
        "proxy",
        "lease",
        "backup",
        "log",
        "exec",
        "skip-sync",
        "tracing",
      ),
      yamlValue,
      { maxKeys: 6 },
    ),
  );
  fc.assert(
    fc.property(document, (doc) => {
      parseChecked(stringify(doc));
    }),
    runs(400),
  );
});

test(`random text, including YAML syntax errors, anchors and aliases (seed ${seed})`, () => {
  const fragment = fc.constantFrom(
    "data:\n",
    "  dir: /x\n",
    "lease:\n  type: static\n",
    "- a\n",
    "&a [1, 2]\n",
    "*a\n",
    "x: &b {k: v}\ny: *b\n",
    "{",
    "}",
    "[",
    ": :\n",
    "\t",
    "  ",
    "'unterminated\n",
    '"esc \\q"\n',
    "? complex\n: key\n",
    "%YAML 1.2\n---\n",
    "---\n",
    "...\n",
    "!!binary aGk=\n",
    "!custom x\n",
    "k: v\nk: w\n",
    "# comment\n",
    "\uFEFF",
  );
  fc.assert(
    fc.property(fc.array(fc.oneof(fragment, fc.string({ maxLength: 20 })), { maxLength: 12 }), (parts) => {
      parseChecked(parts.join(""));
    }),
    runs(600),
  );
});

test(`a valid config with one leaf mutated: the error names that key (seed ${seed})`, () => {
  const base = validFile();
  const paths = leafPaths(base);
  fc.assert(
    fc.property(fc.constantFrom(...paths), hostileValue, (path, value) => {
      const file = structuredClone(base);
      setAt(file, path, value);
      const text = stringify(file);
      const outcome = parseChecked(text);
      if (outcome.ok || outcome.error.kind !== "invalid") return; // `$…` in a value: a syntax error
      // An issue names the mutated key (or a key inside it), at its line; or, for a rule between
      // fields, a key of the same section.
      const keyText = formatPath(path);
      const exact = outcome.error.issues.find((issue) => issue.path.startsWith(keyText));
      const what = `${keyText} = ${JSON.stringify(value)?.slice(0, 80)}: ${outcome.error.message}`;
      if (exact === undefined) {
        assert.ok(
          outcome.error.issues.some(
            (issue) => issue.path.startsWith(String(path[0])) || issue.message.includes(keyText),
          ),
          `no issue names ${keyText} or its section: ${what}`,
        );
        return;
      }
      const lastKey = String([...path].reverse().find((segment) => typeof segment === "string"));
      const lines = text.split("\n");
      const near = lines.slice(Math.max(0, exact.line! - 2), exact.line).join("\n");
      assert.ok(near.includes(lastKey), `line ${exact.line} is not ${keyText}'s: ${what}\n${text}`);
    }),
    runs(600),
  );
});

test(`unknown keys anywhere are reported at the key, with its line (seed ${seed})`, () => {
  const base = validFile();
  const sections = ["", "data", "fuse", "http", "proxy", "lease", "log"];
  fc.assert(
    fc.property(
      fc.constantFrom(...sections),
      fc.stringMatching(/^[a-z][a-z0-9_-]{0,15}$/),
      fc.jsonValue({ maxDepth: 1 }),
      (section, key, value) => {
        const file = structuredClone(base) as Record<string, Record<string, unknown>>;
        const target = section === "" ? (file as Record<string, unknown>) : file[section];
        if (key in target) return;
        target[key] = value;
        const text = stringify(file);
        // `$` would be expanded before parsing (the raw text is expanded, as in LiteFS): not this test's.
        fc.pre(!text.includes("$"));
        const outcome = parseChecked(text);
        assert.ok(!outcome.ok, `unknown key ${section}.${key} accepted`);
        const keyPath = section === "" ? key : `${section}.${key}`;
        const issue = outcome.error.issues.find((i) => i.path === keyPath);
        assert.ok(issue !== undefined, `${keyPath} not named: ${outcome.error.message}`);
        const line = text.split("\n")[issue.line! - 1];
        assert.ok(line.includes(key), `line ${issue.line} is not the key's: ${JSON.stringify(line)}`);
      },
    ),
    runs(300),
  );
});

test(`$VAR expansion edge cases: a Config or a ConfigError (seed ${seed})`, () => {
  const envName = fc.constantFrom("A", "B", "TOKEN", "EMPTY", "UNSET", "X_1");
  const env = fc.record({
    A: fc.string({ maxLength: 10 }),
    B: fc.constantFrom("x", "", "a b", "'q'", '"', "${A}", "$B", ": x", "\n"),
    TOKEN: fc.string({ minLength: 1, maxLength: 20 }),
    EMPTY: fc.constant(""),
    X_1: fc.constantFrom("1", "true", "10s", ":80"),
  });
  const reference = fc.oneof(
    envName.map((n) => `$${n}`),
    envName.map((n) => `\${${n}}`),
    envName.map((n) => `\${${n}:-fallback}`),
    fc
      .tuple(envName, fc.constantFrom("==", "!="), fc.string({ maxLength: 6 }))
      .map(([n, op, v]) => `\${${n} ${op} '${v.replace(/'/g, "")}'}`),
    fc.tuple(envName, envName).map(([a, b]) => `\${${a} == ${b}}`),
    fc.constantFrom(
      "$$",
      "$",
      "${",
      "${}",
      "${ }",
      "${A",
      "${A:}",
      "${A==}",
      "${-}",
      "$-",
      "${A}}",
      "$${A}",
      "${A\n}",
    ),
  );
  const keyed = fc.constantFrom(
    "http:\n  auth-token: ",
    "data:\n  dir: ",
    "data:\n  retention: ",
    "lease:\n  candidate: ",
    "lease:\n  advertise-url: ",
    "http:\n  addr: ",
    "exec: ",
    "log:\n  format: ",
  );
  fc.assert(
    fc.property(
      keyed,
      fc.array(fc.oneof(reference, fc.string({ maxLength: 5 })), { minLength: 1, maxLength: 4 }),
      env,
      (prefix, parts, vars) => {
        parseChecked(`${prefix}${parts.join("")}\n`, vars);
      },
    ),
    runs(800),
  );
});

test(`valid configs round-trip: each written value is in the Config (seed ${seed})`, () => {
  const durationMs = fc.integer({ min: 1, max: 86_400_000 });
  const port = fc.integer({ min: 1, max: 65535 });
  const pathText = fc.stringMatching(/^\/[a-z0-9][a-z0-9._-]{0,11}(\/[a-z0-9][a-z0-9._-]{0,11}){0,2}$/);
  const word = fc.stringMatching(/^[a-z][a-z0-9-]{0,14}$/);
  fc.assert(
    fc.property(
      fc.record({
        dataDir: pathText,
        fuseDir: pathText,
        compress: fc.boolean(),
        retentionMs: durationMs,
        monitorMs: durationMs,
        httpPort: port,
        token: fc.stringMatching(/^[A-Za-z0-9_+/=-]{1,40}$/),
        hostname: word,
        candidate: fc.boolean(),
        format: fc.constantFrom("text", "json"),
        timestamp: fc.boolean(),
        databases: fc.array(fc.stringMatching(/^[a-z]{1,8}\.db$/), { maxLength: 3 }),
      }),
      (v) => {
        fc.pre(!v.dataDir.startsWith(v.fuseDir) && !v.fuseDir.startsWith(v.dataDir));
        fc.pre(!v.hostname.startsWith("xn--")); // an IDNA label that must decode: not every one does
        const file = {
          data: {
            dir: v.dataDir,
            compress: v.compress,
            retention: `${v.retentionMs}ms`,
            "retention-monitor-interval": asGoDuration(v.monitorMs),
          },
          fuse: { dir: v.fuseDir },
          http: { addr: `:${v.httpPort}`, "auth-token": v.token },
          lease: {
            type: "static",
            hostname: v.hostname,
            candidate: v.candidate,
            "advertise-url": `http://${v.hostname}:${v.httpPort}`,
            databases: v.databases,
          },
          log: { format: v.format, timestamp: v.timestamp },
        };
        const text = stringify(file);
        const outcome = parseChecked(text);
        assert.ok(
          outcome.ok,
          `a valid config was refused: ${outcome.ok ? "" : outcome.error.message}\n${text}`,
        );
        const c = outcome.config;
        assert.equal(c.data.dir, v.dataDir);
        assert.equal(c.fuse.dir, v.fuseDir);
        assert.equal(c.data.compress, v.compress);
        assert.equal(c.data.retentionMs, v.retentionMs);
        assert.equal(c.data.retentionMonitorIntervalMs, v.monitorMs);
        assert.equal(c.http.addr, `:${v.httpPort}`);
        assert.equal(c.http.authToken, v.token);
        assert.equal(c.lease.hostname, v.hostname);
        assert.equal(c.lease.candidate, v.candidate);
        assert.equal(c.lease.advertiseUrl, `http://${v.hostname}:${v.httpPort}`);
        assert.deepEqual(c.lease.databases, v.databases);
        assert.equal(c.log.format, v.format);
        assert.equal(c.log.timestamp, v.timestamp);
        // The same text again gives the same Config (parsing has no hidden state).
        assert.deepEqual(parseChecked(text), outcome);
      },
    ),
    runs(300),
  );
});

/** `ms` as a Go duration with hours, minutes, seconds and milliseconds ("1h2m3s4ms"). */
function asGoDuration(ms: number): string {
  const parts: string[] = [];
  const units: [string, number][] = [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
    ["ms", 1],
  ];
  let rest = ms;
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  const text = parts.join("") || "0";
  const back = parseDuration(text);
  assert.ok(back.ok && back.ms === ms, `${ms} → ${text}`);
  return text;
}
