// The bearer token client commands (`import`, `export`, `status`) send to a node whose API requires one
// (`http.auth-token`): `LITEFS_AUTH_TOKEN` from the environment when set and not empty (the explicit,
// per-invocation choice), else the config's `http.auth-token` (a config file found as for the node URL:
// `--config`, else the usual places), else none.

import os from "node:os";

import { loadConfig } from "../config/load-config.js";

export const AUTH_TOKEN_ENV = "LITEFS_AUTH_TOKEN";

/** The token to send, or null for none. Throws only when an explicit `configPath` cannot be loaded. */
export async function resolveAuthToken(
  configPath: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | null> {
  const fromEnv = env[AUTH_TOKEN_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  try {
    const { config } = await loadConfig({
      path: configPath,
      cwd: process.cwd(),
      home: os.homedir(),
      env,
      expandEnv: true,
    });
    return config.http.authToken ?? null;
  } catch (err) {
    if (configPath !== undefined) throw err; // an explicit config that cannot be read is an error
    return null;
  }
}

/** The `Authorization` header for `token` (none for null). */
export function authHeaders(token: string | null): Record<string, string> {
  return token === null ? {} : { Authorization: `Bearer ${token}` };
}
