// Every form of config error: the message must name the file, line:column and key path, and a run must
// report every problem at once.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError, type ConfigIssue } from "../../src/config/config-error.js";
import { parseConfig } from "../../src/config/parse-config.js";

function errorOf(text: string, env: Record<string, string> = {}): ConfigError {
  try {
    parseConfig(text, "litefs.yml", { env, hostname: "m" });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    assert.equal(err.code, "ECONFIG");
    return err;
  }
  assert.fail(`expected a ConfigError for:\n${text}`);
}

/** The formatted issue lines: "litefs.yml:L:C path: message". */
const lines = (text: string, env?: Record<string, string>) =>
  errorOf(text, env).issues.map((i) => `${i.file}:${i.line}:${i.column} ${i.path}: ${i.message}`);

const only = (text: string, env?: Record<string, string>) => {
  const err = errorOf(text, env);
  assert.equal(err.issues.length, 1, err.message);
  return err.message;
};

test("the example from the brief: a bad enum at line:column of the value", () => {
  const text = "# c\n".repeat(12) + "lease:\n  type: foo\n";
  const message = only(text);
  assert.equal(message, 'litefs.yml:14:9 lease.type: expected one of static|etcd|consul, got "foo"');
  const issue: ConfigIssue = errorOf(text).issues[0];
  assert.deepEqual(issue, {
    file: "litefs.yml",
    path: "lease.type",
    line: 14,
    column: 9,
    message: 'expected one of static|etcd|consul, got "foo"',
  });
  assert.equal(errorOf(text).kind, "invalid");
});

test("unknown keys: at the key, with a suggestion or the allowed keys", () => {
  assert.equal(
    only("fuse:\n  debugg: true\n"),
    'litefs.yml:2:3 fuse.debugg: unknown key, did you mean "debug"?',
  );
  assert.equal(
    only("fuse:\n  allow_other: true\n"),
    'litefs.yml:2:3 fuse.allow_other: unknown key, did you mean "allow-other"?',
  );
  assert.equal(only("Data:\n  dir: /x\n"), 'litefs.yml:1:1 Data: unknown key, did you mean "data"?');
  assert.equal(
    only("data:\n  colour: red\n"),
    "litefs.yml:2:3 data.colour: unknown key (expected one of: dir, compress, retention, retention-monitor-interval)",
  );
  assert.equal(
    only("lease:\n  etcd:\n    hosts: [a]\n"),
    "litefs.yml:3:5 lease.etcd.hosts: unknown key (expected one of: endpoints, key)",
  );
  assert.equal(
    only("exec:\n  - cmd: a\n    when: x\n"),
    "litefs.yml:3:5 exec[0].when: unknown key (expected one of: cmd, if-candidate)",
  );
  assert.equal(
    only("__proto__:\n  x: 1\n").replace(/ \(expected.*/, ""),
    "litefs.yml:1:1 __proto__: unknown key",
  );
  assert.equal(only("1: x\n").replace(/ \(expected.*/, ""), "litefs.yml:1:1 1: unknown key");
});

test("LiteFS keys we do not support say so", () => {
  assert.match(
    only("tracing:\n  path: /t\n"),
    /^litefs\.yml:1:1 tracing: unsupported LiteFS key: .*trace log/,
  );
  assert.match(only("strict-verify: true\n"), /^litefs\.yml:1:1 strict-verify: unsupported LiteFS key/);
  assert.match(
    only("backup:\n  cluster: x\n"),
    /^litefs\.yml:2:3 backup\.cluster: unsupported LiteFS key: .*LiteFS Cloud/,
  );
});

test("wrong types, at the value", () => {
  assert.equal(only("fuse:\n  dir: [a, b]\n"), "litefs.yml:2:8 fuse.dir: expected a string, got a list");
  assert.equal(only("fuse:\n  dir: {a: 1}\n"), "litefs.yml:2:8 fuse.dir: expected a string, got a mapping");
  assert.equal(
    only("fuse:\n  debug: maybe\n"),
    'litefs.yml:2:10 fuse.debug: expected true or false, got "maybe"',
  );
  assert.equal(only("fuse:\n  debug: 1\n"), "litefs.yml:2:10 fuse.debug: expected true or false, got 1");
  assert.equal(only("fuse: /litefs\n"), 'litefs.yml:1:7 fuse: expected a mapping of keys, got "/litefs"');
  assert.equal(only("fuse: 5\n"), "litefs.yml:1:7 fuse: expected a mapping of keys, got 5");
  assert.equal(only("fuse: [a]\n"), "litefs.yml:1:7 fuse: expected a mapping of keys, got a list");
  assert.equal(
    only("lease:\n  databases: app.db\n"),
    'litefs.yml:2:14 lease.databases: expected a list, got "app.db"',
  );
  assert.equal(
    only("proxy:\n  passthrough: {a: b}\n"),
    "litefs.yml:2:16 proxy.passthrough: expected a list, got a mapping",
  );
  assert.equal(
    only("lease:\n  databases: [a, [b]]\n"),
    "litefs.yml:2:18 lease.databases[1]: expected a string, got a list",
  );
  assert.equal(only("exec: {cmd: a}\n"), "litefs.yml:1:7 exec: expected a list, got a mapping");
  assert.equal(only("exec: [a]\n"), 'litefs.yml:1:8 exec[0]: expected a mapping of keys, got "a"');
  assert.equal(only("- a\n- b\n"), "litefs.yml:1:1 expected a mapping of keys, got a list");
  assert.equal(only("just text\n"), 'litefs.yml:1:1 expected a mapping of keys, got "just text"');
});

test("bad values: durations and enums", () => {
  assert.equal(
    only("data:\n  retention: 10\n"),
    'litefs.yml:2:14 data.retention: expected a duration with a unit, such as "10s", got 10',
  );
  assert.equal(
    only("data:\n  retention: 10 minutes\n"),
    'litefs.yml:2:14 data.retention: expected a duration such as "10s" or "1m30s", got "10 minutes": unknown unit " minutes" (use ns, us, ms, s, m or h)',
  );
  assert.equal(only("lease:\n  ttl: -5s\n"), 'litefs.yml:2:8 lease.ttl: must not be negative, got "-5s"');
  assert.equal(
    only("lease:\n  ttl: [1s]\n"),
    'litefs.yml:2:8 lease.ttl: expected a duration such as "10s", got a list',
  );
  assert.equal(
    only("log:\n  format: xml\n"),
    'litefs.yml:2:11 log.format: expected one of text|json, got "xml"',
  );
  assert.equal(
    only("proxy:\n  mode: replay\n"),
    'litefs.yml:2:9 proxy.mode: expected one of forward|fly-replay, got "replay"',
  );
  assert.equal(
    only("backup:\n  type: s3\n"),
    'litefs.yml:2:9 backup.type: expected one of file|http, got "s3"',
  );
});

test("a key with no value or an empty string is an error, not a silent default", () => {
  const hint = "has no value (an environment variable that is not set?); remove the key to use the default";
  assert.equal(only("lease:\n  hostname:\n"), `litefs.yml:2:3 lease.hostname: ${hint}`);
  assert.equal(only('lease:\n  hostname: ""\n'), `litefs.yml:2:13 lease.hostname: ${hint}`);
  assert.equal(only("lease:\n  candidate: ${IS_PRIMARY}\n"), `litefs.yml:2:3 lease.candidate: ${hint}`);
  assert.equal(only('http:\n  auth-token: "${TOKEN}"\n'), `litefs.yml:2:15 http.auth-token: ${hint}`);
  assert.equal(only("lease:\n  databases: [a, ~]\n"), `litefs.yml:2:18 lease.databases[1]: ${hint}`);
});

test("exec: missing cmd, and commands that cannot be split", () => {
  assert.equal(only("exec:\n  - if-candidate: true\n"), "litefs.yml:2:5 exec[0].cmd: is required");
  assert.equal(only("exec:\n  -\n"), "litefs.yml:2:4 exec[0].cmd: is required", "just after the dash");
  assert.equal(
    only('exec: "migrate && serve"\n'),
    "litefs.yml:1:7 exec: cannot split into arguments: \"&\" at character 9 is shell syntax, but commands run without a shell; quote it, or run a shell explicitly: sh -c '…'",
  );
  assert.equal(
    only('exec:\n  - cmd: a\n  - cmd: "echo \'x"\n'),
    "litefs.yml:3:10 exec[1].cmd: cannot split into arguments: unterminated ' quote at character 6",
  );
  assert.equal(
    only('exec: ""\n'),
    "litefs.yml:1:7 exec: has no value (an environment variable that is not set?); remove the key to use the default",
  );
});

test("YAML syntax errors are reported with their line, all of them", () => {
  const err = errorOf("data:\n  dir: /x\n dir2: [1\nfuse: a: b\n");
  assert.equal(err.kind, "syntax");
  assert.ok(err.issues.length >= 2, err.message);
  assert.ok(
    err.issues.every((i) => i.line !== undefined && i.line >= 3 && i.path === ""),
    err.message,
  );
  assert.match(err.message, /^\d+ problems in litefs\.yml:\n {2}litefs\.yml:3:\d+ /);

  const tabs = errorOf("data:\n\tdir: /x\n");
  assert.equal(tabs.kind, "syntax");
  assert.match(tabs.message, /litefs\.yml:2:1 .*[Tt]ab/);

  assert.deepEqual(lines("data:\n  dir: /a\n  dir: /b\n"), ["litefs.yml:3:3 : Map keys must be unique"]);
  assert.match(only("a: 1\n---\nb: 2\n"), /^litefs\.yml:2:1 Source contains multiple documents/);
});

test("all problems at once, sorted by position, each with its own place", () => {
  const text = [
    "exit-on-error: perhaps", // 1
    "fuse:", // 2
    "  dir: [x]", // 3
    "  debugg: true", // 4
    "data:", // 5
    "  retention: 10", // 6
    "lease:", // 7
    "  type: foo", // 8
    "  candidate: maybe", // 9
    "tracing: {}", // 10
  ].join("\n");
  const err = errorOf(text);
  assert.equal(err.kind, "invalid");
  assert.deepEqual(lines(text), [
    'litefs.yml:1:16 exit-on-error: expected true or false, got "perhaps"',
    "litefs.yml:3:8 fuse.dir: expected a string, got a list",
    'litefs.yml:4:3 fuse.debugg: unknown key, did you mean "debug"?',
    'litefs.yml:6:14 data.retention: expected a duration with a unit, such as "10s", got 10',
    'litefs.yml:8:9 lease.type: expected one of static|etcd|consul, got "foo"',
    'litefs.yml:9:14 lease.candidate: expected true or false, got "maybe"',
    "litefs.yml:10:1 tracing: unsupported LiteFS key: LiteFS's on-disk trace log is not implemented; use log.debug",
  ]);
  assert.equal(err.message.split("\n")[0], "7 problems in litefs.yml:");
  assert.equal(err.message.split("\n")[2], "  litefs.yml:3:8 fuse.dir: expected a string, got a list");
});

test("the message lists at most 25 problems; issues keeps them all", () => {
  const text = Array.from({ length: 40 }, (_, i) => `unknown${i}: x`).join("\n");
  const err = errorOf(text);
  assert.equal(err.issues.length, 40);
  const messageLines = err.message.split("\n");
  assert.equal(messageLines[0], "40 problems in litefs.yml:");
  assert.equal(messageLines.length, 1 + 25 + 1);
  assert.equal(messageLines.at(-1), "  … and 15 more");
});

test("positions refer to the file as written, even when a variable expands to several lines", () => {
  const text = "lease:\n  $EXTRA\n  type: foo\n";
  // $EXTRA adds two lines; the bad value is still reported on line 3 of the file.
  const env = { EXTRA: "hostname: a\n  promote: false" };
  assert.deepEqual(lines(text, env), [
    'litefs.yml:3:9 lease.type: expected one of static|etcd|consul, got "foo"',
  ]);
  // A bad value that came from a variable points at the variable.
  assert.deepEqual(lines("log:\n  format: ${FORMAT}\n", { FORMAT: "xml" }), [
    'litefs.yml:2:11 log.format: expected one of text|json, got "xml"',
  ]);
  assert.deepEqual(lines("log:\n  debug: x${A}${B}y\n  format: xml\n", { A: "long-value", B: "" }), [
    'litefs.yml:2:10 log.debug: expected true or false, got "xlong-valuey"',
    'litefs.yml:3:11 log.format: expected one of text|json, got "xml"',
  ]);
});

test("Windows line endings do not shift columns", () => {
  assert.equal(
    only("fuse:\r\n  dir: /x\r\nlease:\r\n  type: foo\r\n"),
    'litefs.yml:4:9 lease.type: expected one of static|etcd|consul, got "foo"',
  );
});

test("hostile input: alias bombs and deep nesting are refused, not expanded", () => {
  const bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
  for (let i = 1; i < 8; i++) {
    const prev = String.fromCharCode(97 + i - 1);
    const name = String.fromCharCode(97 + i);
    bomb.push(`${name}: &${name} [${Array(10).fill(`*${prev}`).join(", ")}]`);
  }
  const err = errorOf(bomb.join("\n"));
  assert.match(err.message, /more than 100000 values \(alias expansion\?\)/);

  const deep = "a: " + "[".repeat(100) + "]".repeat(100);
  assert.match(errorOf(deep).message, /nested more than 64 levels deep/);
});
