// The node's V8 flags (src/cli/eager-compile.ts): its modules compile as they load and stay compiled,
// unless LITEFS_LAZY_COMPILE=1; `litefs mount` sets them before loading the node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import { LitefsNode } from "../support/litefs-node.js";

const EAGER_COMPILE = new URL("../../src/cli/eager-compile.js", import.meta.url).href;
const NODE_MODULE = new URL("../../src/node/litefs-node.js", import.meta.url).href;

/** Bytecode V8 holds after a fresh process calls compileEagerly with `env`, then loads the node. */
function bytecodeAfterLoading(env: NodeJS.ProcessEnv): { set: string[]; bytes: number } {
  const script = `
    import v8 from "node:v8";
    const { compileEagerly } = await import(${JSON.stringify(EAGER_COMPILE)});
    const set = compileEagerly(process.env);
    await import(${JSON.stringify(NODE_MODULE)});
    process.stdout.write(JSON.stringify({ set, bytes: v8.getHeapCodeStatistics().bytecode_and_metadata_size }));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env,
    encoding: "utf8",
  });
  return JSON.parse(out) as { set: string[]; bytes: number };
}

test("the node's modules are compiled as they load, unless LITEFS_LAZY_COMPILE=1", () => {
  const env = { ...process.env };
  delete env.LITEFS_LAZY_COMPILE;
  const eager = bytecodeAfterLoading(env);
  const lazy = bytecodeAfterLoading({ ...env, LITEFS_LAZY_COMPILE: "1" });
  assert.deepEqual(eager.set, ["--no-lazy", "--no-flush-bytecode"]);
  assert.deepEqual(lazy.set, []);
  // Lazily, only the functions that ran at load have bytecode (measured: ~0.5 MB against ~1.9 MB).
  assert.ok(
    eager.bytes > 2 * lazy.bytes,
    `bytecode after loading the node: ${eager.bytes} bytes eager, ${lazy.bytes} lazy`,
  );
});

test("litefs mount says how it compiles: eager by default, lazy when asked", async (t) => {
  for (const [env, expected] of [
    [{ ...process.env, LITEFS_LAZY_COMPILE: "" }, "eager"],
    [{ ...process.env, LITEFS_LAZY_COMPILE: "1" }, "lazy"],
  ] as const) {
    const node = await LitefsNode.start({ env });
    t.after(() => node.cleanup());
    const ready = node
      .lastRunLogs()
      .split("\n")
      .find((line) => line.includes('"mount ready"'));
    assert.ok(ready !== undefined, `no "mount ready" line:\n${node.lastRunLogs()}`);
    assert.equal((JSON.parse(ready) as { compile?: string }).compile, expected, ready);
    await node.stop();
  }
});
