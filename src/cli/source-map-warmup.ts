// With `--enable-source-maps` (bin/litefs runs the node so: stack traces name the TypeScript lines), Node
// parses a module's source map the first time a stack through that module is formatted — and Node's own
// stream code formats stacks it never prints (destroying a stream with an AbortError reads `err.stack`).
// A CPU profile of a node during a lease handoff showed 13.6 ms of the event loop, the loop that also
// answers FUSE requests, spent parsing maps inside such an abort. So once the node is up, the maps of
// every loaded module are parsed in the background, one module per turn of the event loop.

import fs from "node:fs";
import module from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** Every `.js` file under `dir` (the compiled sources). */
function compiledFiles(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return compiledFiles(full);
    return e.name.endsWith(".js") ? [full] : [];
  });
}

/**
 * Parses, one per event-loop turn, the source maps of the loaded modules under the compiled `src/`
 * directory (modules not loaded have none registered: skipped at once). Nothing to do without source
 * maps. Resolves when done; never rejects.
 */
export function warmSourceMaps(): Promise<number> {
  const enabled = (process as { sourceMapsEnabled?: boolean }).sourceMapsEnabled === true;
  if (!enabled) return Promise.resolve(0);
  const srcDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
  const files = compiledFiles(srcDir);
  let parsed = 0;
  return new Promise((resolve) => {
    const next = (i: number): void => {
      if (i >= files.length) {
        resolve(parsed);
        return;
      }
      try {
        // findSourceMap parses the map of a loaded module; findEntry makes sure its mappings are read.
        const map = module.findSourceMap(pathToFileURL(files[i]).href);
        if (map !== undefined) {
          map.findEntry(0, 0);
          parsed++;
        }
      } catch {
        // A map that cannot be parsed now would fail the same way later: nothing to gain here.
      }
      setImmediate(next, i + 1);
    };
    setImmediate(next, 0);
  });
}
