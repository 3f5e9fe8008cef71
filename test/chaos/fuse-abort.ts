// Last resort for a FUSE server that cannot die: a process SIGKILLed while it holds a file open on its
// own mount closes that file on its way out, the kernel sends FLUSH to the mount's server — itself,
// now dead — and the process sleeps uninterruptibly (state D, `request_wait_answer`) forever. Only
// aborting the connection (fusectl: /sys/fs/fuse/connections/<minor>/abort) frees it. The chaos
// harness does that when a killed node does not exit, and reports the node as a violation.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

const FUSECTL_DIR = "/sys/fs/fuse/connections";

/** The FUSE connection number (the mount's minor device number) of the mount at `dir`, if any. */
export function fuseConnectionOf(dir: string): number | undefined {
  const target = path.resolve(dir);
  for (const line of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    const fields = line.split(" ");
    if (fields.length < 5 || fields[4] !== target) continue;
    const [, minor] = fields[2].split(":");
    return Number(minor);
  }
  return undefined;
}

/**
 * Aborts the FUSE connection behind `dir` (mounting fusectl first if this machine has not). Returns
 * what it did, for the fault record.
 */
export function abortFuseConnection(dir: string): string {
  const connection = fuseConnectionOf(dir);
  if (connection === undefined) return `no mount at ${dir} to abort`;
  if (!fs.existsSync(path.join(FUSECTL_DIR, String(connection)))) {
    execFileSync("mount", ["-t", "fusectl", "fusectl", FUSECTL_DIR], { stdio: "pipe" });
  }
  const waiting = fs.readFileSync(path.join(FUSECTL_DIR, String(connection), "waiting"), "utf8").trim();
  fs.writeFileSync(path.join(FUSECTL_DIR, String(connection), "abort"), "1");
  return `aborted FUSE connection ${connection} of ${dir} (${waiting} request(s) waiting)`;
}
