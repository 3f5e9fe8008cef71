import assert from "node:assert/strict";
import { test } from "node:test";
import { type CommandSpec, FlagError, formatUsage, parseFlags } from "../../src/cli/flags.js";

const mount = {
  name: "litefs mount",
  args: "[-- CMD [ARGS...]]",
  summary: "Mounts the file system and runs CMD.",
  flags: {
    config: { type: "string", aliases: ["c"], valueName: "PATH", description: "config file" },
    "no-expand-env": { type: "boolean", description: "do not expand $VAR in the config" },
    "fuse.debug": { type: "boolean", description: "log FUSE requests" },
    port: { type: "number", default: 20202, description: "API port" },
    retries: { type: "number", description: "retries" },
    mode: { type: "string", default: "fast", description: "mode" },
  },
} as const satisfies CommandSpec;

const parse = (...argv: string[]) => parseFlags(argv, mount);

function flagError(argv: string[]): FlagError {
  try {
    parseFlags(argv, mount);
  } catch (err) {
    assert.ok(err instanceof FlagError, String(err));
    assert.equal(err.code, "EUSAGE");
    return err;
  }
  assert.fail(`expected a FlagError for ${argv.join(" ")}`);
}

test("defaults when no flags are given", () => {
  const r = parse();
  assert.deepEqual(r.values, {
    config: undefined,
    "no-expand-env": false,
    "fuse.debug": false,
    port: 20202,
    retries: undefined,
    mode: "fast",
  });
  assert.deepEqual(r.positionals, []);
  assert.deepEqual(r.rest, []);
  assert.equal(r.help, false);
});

test("Go's forms: -name value, -name=value, --name value, --name=value", () => {
  for (const argv of [
    ["-config", "/etc/x.yml"],
    ["-config=/etc/x.yml"],
    ["--config", "/etc/x.yml"],
    ["--config=/etc/x.yml"],
    ["-c", "/etc/x.yml"],
    ["--c=/etc/x.yml"],
  ]) {
    assert.equal(parse(...argv).values.config, "/etc/x.yml", argv.join(" "));
  }
  assert.equal(parse("-config=a=b").values.config, "a=b", "only the first = splits");
  assert.equal(parse("-config=").values.config, "", "an explicit empty value");
  assert.equal(
    parse("-config", "-weird").values.config,
    "-weird",
    "the next argument is the value, as in Go",
  );
  assert.equal(parse("-config", "a", "-config", "b").values.config, "b", "the last one wins");
});

test("booleans: alone mean true; a value only with =", () => {
  assert.equal(parse("-no-expand-env").values["no-expand-env"], true);
  assert.equal(parse("--no-expand-env").values["no-expand-env"], true);
  assert.equal(parse("-fuse.debug").values["fuse.debug"], true, "dotted names");
  for (const v of ["true", "1", "t", "T", "TRUE", "True"])
    assert.equal(parse(`-fuse.debug=${v}`).values["fuse.debug"], true);
  for (const v of ["false", "0", "f", "F", "FALSE", "False"])
    assert.equal(parse(`-fuse.debug=${v}`).values["fuse.debug"], false);
  const r = parse("-fuse.debug", "false");
  assert.equal(r.values["fuse.debug"], true);
  assert.deepEqual(r.positionals, ["false"], "a separate word after a boolean is not its value");
  assert.match(flagError(["-fuse.debug=maybe"]).message, /invalid boolean value "maybe" for -fuse\.debug/);
});

test("numbers", () => {
  assert.equal(parse("-port", "8080").values.port, 8080);
  assert.equal(parse("--retries=3").values.retries, 3);
  assert.equal(parse("-retries", "-1").values.retries, -1);
  assert.equal(parse("-retries", "1.5e2").values.retries, 150);
  const err = flagError(["-port", "80a"]);
  assert.equal(err.reason, "bad-value");
  assert.equal(err.message, 'invalid number "80a" for -port');
  assert.equal(flagError(["--port="]).message, 'invalid number "" for --port');
  assert.equal(flagError(["-port", "Infinity"]).reason, "bad-value");
});

test("stops at -- and at the first non-flag; what follows is untouched", () => {
  let r = parse("-config", "x.yml", "--", "node", "app.js", "--port", "8080");
  assert.equal(r.values.config, "x.yml");
  assert.deepEqual(r.positionals, []);
  assert.deepEqual(r.rest, ["node", "app.js", "--port", "8080"]);
  assert.equal(r.values.port, 20202, "--port after -- belongs to the app");
  assert.equal(typeof r.rest[3], "string");

  r = parse("-fuse.debug", "db.sqlite", "-config", "x", "--", "cmd", "--", "y");
  assert.equal(r.values.config, undefined, "flags after the first positional are positionals");
  assert.deepEqual(r.positionals, ["db.sqlite", "-config", "x"]);
  assert.deepEqual(r.rest, ["cmd", "--", "y"], "only the first -- splits");

  r = parse("-", "x");
  assert.deepEqual(r.positionals, ["-", "x"], "a lone dash is a positional");
  assert.deepEqual(parse("--").rest, []);
});

test("clear errors for unknown flags, missing values and bad syntax", () => {
  let err = flagError(["-confg", "x"]);
  assert.equal(err.reason, "unknown-flag");
  assert.equal(err.argument, "-confg");
  assert.equal(err.message, "unknown flag: -confg (did you mean -config?)");
  assert.equal(
    flagError(["--no-expand-envv"]).message,
    "unknown flag: --no-expand-envv (did you mean --no-expand-env?)",
  );
  assert.equal(flagError(["--verbose"]).message, "unknown flag: --verbose");

  err = flagError(["-config"]);
  assert.equal(err.reason, "missing-value");
  assert.equal(err.message, "flag needs a value: -config PATH");
  assert.equal(flagError(["--config", "--", "app"]).message, "flag needs a value: --config PATH");
  assert.equal(flagError(["-retries"]).message, "flag needs a value: -retries N");

  for (const bad of ["---config", "-=x", "--=x"]) {
    err = flagError([bad]);
    assert.equal(err.reason, "bad-syntax");
    assert.equal(err.message, `bad flag syntax: ${bad}`);
  }
});

test("-h, -help and --help ask for usage", () => {
  for (const h of ["-h", "-help", "--help", "--h"]) {
    const r = parse("-config", "x", h, "-unknown");
    assert.equal(r.help, true, h);
    assert.deepEqual(r.positionals, []);
    assert.deepEqual(r.rest, []);
  }
  // A command that defines its own -h keeps it.
  const own = parseFlags(["-h", "host"], {
    name: "x",
    flags: { h: { type: "string", description: "host" } },
  });
  assert.equal(own.help, false);
  assert.equal(own.values.h, "host");
});

test("usage text lists every flag with its value name, aliases and default", () => {
  assert.equal(
    formatUsage(mount),
    [
      "usage: litefs mount [flags] [-- CMD [ARGS...]]",
      "",
      "Mounts the file system and runs CMD.",
      "",
      "flags:",
      "  --config PATH, -c PATH  config file",
      "  --no-expand-env         do not expand $VAR in the config",
      "  --fuse.debug            log FUSE requests",
      "  --port N                API port (default 20202)",
      "  --retries N             retries",
      '  --mode VALUE            mode (default "fast")',
      "",
      "Flags may be written with one dash or two (-config or --config), and -name=value.",
      "",
    ].join("\n"),
  );
  assert.equal(formatUsage({ name: "litefs version", flags: {} }), "usage: litefs version\n");
});

test("a spec that defines a name twice is a programming error", () => {
  assert.throws(
    () =>
      parseFlags([], {
        name: "x",
        flags: {
          a: { type: "boolean", description: "", aliases: ["b"] },
          b: { type: "boolean", description: "" },
        },
      }),
    /flag name defined twice: b/,
  );
});

test("types: values follow the spec", () => {
  const r = parse("-config", "x");
  const config: string | undefined = r.values.config;
  const port: number = r.values.port;
  const noExpand: boolean = r.values["no-expand-env"];
  const mode: string = r.values.mode;
  assert.deepEqual([config, port, noExpand, mode], ["x", 20202, false, "fast"]);
});
