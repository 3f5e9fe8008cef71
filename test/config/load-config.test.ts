import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../../src/config/config-error.js";
import { configSearchPaths, loadConfig, type LoadConfigOptions } from "../../src/config/load-config.js";
import { configFileSchema } from "../../src/config/config-file-schema.js";
import { parseConfig } from "../../src/config/parse-config.js";
import { knownKeysAt } from "../../src/config/schema-issues.js";

const EXAMPLE = new URL("../../../docs/litefs.example.yml", import.meta.url);

function tempDirs(t: { after(fn: () => void): void }) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "litefs-config-"));
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = (name: string) => {
    const p = path.join(root, name);
    fs.mkdirSync(p, { recursive: true });
    return p;
  };
  return { root, cwd: dir("cwd"), home: dir("home"), etc: dir("etc") };
}

const write = (dir: string, text: string, name = "litefs.yml") => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

async function loadError(options: LoadConfigOptions): Promise<ConfigError> {
  try {
    await loadConfig(options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail("expected a ConfigError");
}

test("search order: ./litefs.yml, then ~/litefs.yml, then /etc/litefs.yml", async (t) => {
  const d = tempDirs(t);
  const options = { cwd: d.cwd, home: d.home, systemDir: d.etc, env: {}, expandEnv: true, hostname: "h" };
  assert.deepEqual(configSearchPaths(options), [
    path.join(d.cwd, "litefs.yml"),
    path.join(d.home, "litefs.yml"),
    path.join(d.etc, "litefs.yml"),
  ]);
  assert.deepEqual(configSearchPaths({ cwd: "/w", home: undefined }), ["/w/litefs.yml", "/etc/litefs.yml"]);
  assert.deepEqual(configSearchPaths({ cwd: "/w", home: "" }), ["/w/litefs.yml", "/etc/litefs.yml"]);

  const none = await loadError(options);
  assert.equal(none.kind, "not-found");
  assert.equal(
    none.message,
    `litefs.yml no config file found; looked in ${path.join(d.cwd, "litefs.yml")}, ${path.join(d.home, "litefs.yml")}, ` +
      `${path.join(d.etc, "litefs.yml")} (use --config PATH)`,
  );

  write(d.etc, "fuse:\n  dir: /from-etc\n");
  let loaded = await loadConfig(options);
  assert.equal(loaded.path, path.join(d.etc, "litefs.yml"));
  assert.equal(loaded.config.fuse.dir, "/from-etc");

  write(d.home, "fuse:\n  dir: /from-home\n");
  loaded = await loadConfig(options);
  assert.equal(loaded.path, path.join(d.home, "litefs.yml"));
  assert.equal(loaded.config.fuse.dir, "/from-home");
  assert.equal(
    (await loadConfig({ ...options, home: undefined })).config.fuse.dir,
    "/from-etc",
    "no home: skipped",
  );

  write(d.cwd, "fuse:\n  dir: /from-cwd\n");
  loaded = await loadConfig(options);
  assert.equal(loaded.path, path.join(d.cwd, "litefs.yml"));
  assert.equal(loaded.config.fuse.dir, "/from-cwd");
});

test("a found file that is broken is reported, not skipped for the next one", async (t) => {
  const d = tempDirs(t);
  const options = { cwd: d.cwd, home: d.home, systemDir: d.etc, env: {}, expandEnv: true, hostname: "h" };
  write(d.etc, "fuse:\n  dir: /fine\n");
  write(d.home, "fuse:\n  dir: [bad]\n");
  const err = await loadError(options);
  assert.equal(err.kind, "invalid");
  assert.equal(err.message, `${path.join(d.home, "litefs.yml")}:2:8 fuse.dir: expected a string, got a list`);

  fs.mkdirSync(path.join(d.cwd, "litefs.yml"));
  const dir = await loadError(options);
  assert.equal(dir.kind, "unreadable");
  assert.match(dir.message, /is a directory, not a config file/);
});

test("an explicit path: relative to cwd, named as given in messages, never a fallback", async (t) => {
  const d = tempDirs(t);
  const base = {
    cwd: d.cwd,
    home: d.home,
    systemDir: d.etc,
    env: { H: "n9" },
    expandEnv: true,
    hostname: "h",
  };
  write(d.cwd, "fuse:\n  dir: /default\n");
  write(d.cwd, "lease:\n  hostname: $H\n", "node.yml");

  const loaded = await loadConfig({ ...base, path: "node.yml" });
  assert.equal(loaded.path, path.join(d.cwd, "node.yml"));
  assert.equal(loaded.config.lease.hostname, "n9");
  assert.equal(
    (await loadConfig({ ...base, path: "node.yml", expandEnv: false })).config.lease.hostname,
    "$H",
    "--no-expand-env",
  );

  const missing = await loadError({ ...base, path: "missing.yml" });
  assert.equal(missing.kind, "not-found");
  assert.equal(missing.message, `missing.yml config file not found: ${path.join(d.cwd, "missing.yml")}`);
  assert.equal(missing.issues[0].line, undefined);

  write(d.cwd, "log:\n  format: xml\n", "bad.yml");
  const bad = await loadError({ ...base, path: "bad.yml" });
  assert.equal(bad.message, 'bad.yml:2:11 log.format: expected one of text|json, got "xml"');
});

test("files that are not config files: too large, not UTF-8", async (t) => {
  const d = tempDirs(t);
  const base = { cwd: d.cwd, home: undefined, systemDir: d.etc, env: {}, expandEnv: true, hostname: "h" };
  write(d.cwd, "# " + "x".repeat(1024 * 1024) + "\n", "big.yml");
  const big = await loadError({ ...base, path: "big.yml" });
  assert.equal(big.kind, "unreadable");
  assert.match(big.message, /^big\.yml config file is 1048579 bytes; more than 1048576 is not a config$/);

  fs.writeFileSync(path.join(d.cwd, "latin1.yml"), Buffer.from([0x61, 0x3a, 0x20, 0xe9, 0x0a]));
  const latin1 = await loadError({ ...base, path: "latin1.yml" });
  assert.equal(latin1.kind, "unreadable");
  assert.equal(latin1.message, "latin1.yml config file is not valid UTF-8 text");
});

test("docs/litefs.example.yml is valid and sets every section", async () => {
  const text = fs.readFileSync(EXAMPLE, "utf8");
  const env = { LITEFS_AUTH_TOKEN: "secret-token", HOSTNAME: "node1" };
  const config = parseConfig(text, "litefs.example.yml", { env, hostname: "unused" });
  assert.equal(config.http.authToken, "secret-token");
  assert.equal(config.lease.hostname, "node1");
  assert.equal(config.lease.type, "etcd");
  assert.ok(config.proxy !== undefined);
  assert.ok(config.backup !== undefined);
  assert.equal(config.exec.length, 2);

  // The file documents every key the schema knows (each appears in it, commented out or not).
  const keys = new Set<string>();
  const walk = (at: (string | number)[]) => {
    for (const key of knownKeysAt(configFileSchema, at)) {
      keys.add(key);
      walk([...at, key]);
      walk([...at, key, 0]);
    }
  };
  walk([]);
  assert.ok(keys.size > 50, `only ${keys.size} keys found in the schema`);
  for (const key of keys)
    assert.match(text, new RegExp(`^\\s*#?\\s*(- )?${key}:`, "m"), `example lacks ${key}`);

  // Without the token variable the example refuses to start rather than run unauthenticated.
  assert.throws(
    () => parseConfig(text, "litefs.example.yml", { env: {}, hostname: "h" }),
    (err: unknown) => err instanceof ConfigError && /http\.auth-token: has no value/.test(err.message),
  );
});
