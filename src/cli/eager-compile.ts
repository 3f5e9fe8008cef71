// V8 compiles a function the first time it is called (lazy compilation) and, by default, throws the
// bytecode of a function away again once it has not run for a few full garbage collections (bytecode
// flushing). For a long-running node both are wrong on one path: a lease handoff runs code that ran
// never or long ago (stepping down, starting a replica client, answering two replicas' stream
// requests as the new primary), on the event loop that answers the application's FUSE requests, at
// the moment the application waits to write again. bench/first-handoff.ts (six fresh three-node
// clusters per mode, alternating): first handoff's write gap p50 96 ms, max 131 compiling lazily; p50
// 81, max 95 with every module of the node compiled as it loads and kept (a second run, after two
// other handoff changes: p50 73 vs 62 ms, the second handoff p50 69 vs 52). The cost: a node starts
// ~60 ms later alone (~0.5 s for three starting at once on two cores) and holds ~10 MB more (125 →
// 135 MB resident, one database). `LITEFS_LAZY_COMPILE=1` keeps V8's defaults.

import v8 from "node:v8";

/** The V8 flags of a node process (`litefs mount`). */
export const NODE_V8_FLAGS: readonly string[] = ["--no-lazy", "--no-flush-bytecode"];

let mode: "eager" | "lazy" = "lazy";

/**
 * Sets NODE_V8_FLAGS unless `env.LITEFS_LAZY_COMPILE` is "1". Call before the node's modules are
 * imported: only code compiled afterwards is compiled eagerly. Returns the flags set.
 */
export function compileEagerly(env: NodeJS.ProcessEnv = process.env): readonly string[] {
  if (env.LITEFS_LAZY_COMPILE === "1") return [];
  v8.setFlagsFromString(NODE_V8_FLAGS.join(" "));
  mode = "eager";
  return NODE_V8_FLAGS;
}

/** How this process compiles (for the node's "mount ready" line). */
export function compileMode(): "eager" | "lazy" {
  return mode;
}
