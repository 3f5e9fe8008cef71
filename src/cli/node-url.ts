// The URL of the running node's HTTP API for client commands (`import`, `export`): `--url` when given,
// else the config's `http.addr` (when a config file is found), else http://localhost:20202.

import os from "node:os";

import { loadConfig } from "../config/load-config.js";
import { parseHostPort } from "../config/host-port.js";

export const DEFAULT_NODE_URL = "http://localhost:20202";

/** The flags every command that talks to a running node takes (`--url`, `--config`). */
export const NODE_API_FLAGS = {
  url: {
    type: "string",
    description: "node API URL (default: from the config's http.addr, else http://localhost:20202)",
  },
  config: {
    type: "string",
    description:
      "config file to take http.addr and http.auth-token from (LITEFS_AUTH_TOKEN overrides the token)",
    valueName: "PATH",
  },
} as const;

export async function resolveNodeUrl(
  url: string | undefined,
  configPath: string | undefined,
): Promise<string> {
  if (url !== undefined) return url.replace(/\/+$/, "");
  try {
    const { config } = await loadConfig({
      path: configPath,
      cwd: process.cwd(),
      home: os.homedir(),
      env: process.env,
      expandEnv: true,
    });
    const addr = parseHostPort(config.http.addr);
    if (addr.ok) {
      const host =
        addr.host === "" || addr.host === "0.0.0.0" || addr.host === "::" ? "localhost" : addr.host;
      return `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
    }
  } catch (err) {
    if (configPath !== undefined) throw err; // an explicit config that cannot be read is an error
  }
  return DEFAULT_NODE_URL;
}
