// Choosing the IPv4 /24 a test network uses: one that no address or route of the machine's own
// network namespace touches, so that the addresses we hand out can never mean a real host. The
// addresses live only inside namespaces the test created; this check is what makes that safe even on
// a machine whose own network happens to use the same private range.
import { execFileSync } from "node:child_process";

/** An IPv4 prefix: `base` as a 32-bit unsigned number, and its length. */
export interface Ipv4Prefix {
  base: number;
  length: number;
}

/** Parses "10.213.4.0/24" (or a bare address, as /32). Throws on anything else. */
export function parseIpv4Prefix(text: string): Ipv4Prefix {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(text);
  if (match === null) throw new RangeError(`not an IPv4 prefix: ${JSON.stringify(text)}`);
  const octets = match.slice(1, 5).map(Number);
  const length = match[5] === undefined ? 32 : Number(match[5]);
  if (octets.some((o) => o > 255) || length > 32) throw new RangeError(`not an IPv4 prefix: ${text}`);
  const address = ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
  return { base: (address & maskOf(length)) >>> 0, length };
}

export function formatIpv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => (address >>> shift) & 0xff).join(".");
}

/** True when the two prefixes share at least one address. */
export function prefixesOverlap(a: Ipv4Prefix, b: Ipv4Prefix): boolean {
  const mask = maskOf(Math.min(a.length, b.length));
  return (a.base & mask) >>> 0 === (b.base & mask) >>> 0;
}

/**
 * The IPv4 prefixes the calling process's network namespace uses: every interface address (with its
 * prefix) and every route destination in every routing table, except the default route (which
 * matches everything and says nothing about who is where).
 */
export function prefixesInUse(): Ipv4Prefix[] {
  const addresses = JSON.parse(
    execFileSync("ip", ["-j", "-4", "addr", "show"], { encoding: "utf8" }),
  ) as Array<{
    addr_info?: Array<{ local?: string; prefixlen?: number }>;
  }>;
  const routes = JSON.parse(
    execFileSync("ip", ["-j", "-4", "route", "show", "table", "all"], { encoding: "utf8" }),
  ) as Array<{ dst?: string }>;
  const prefixes: Ipv4Prefix[] = [];
  for (const link of addresses) {
    for (const info of link.addr_info ?? []) {
      if (info.local !== undefined) prefixes.push(parseIpv4Prefix(`${info.local}/${info.prefixlen ?? 32}`));
    }
  }
  for (const route of routes) {
    if (route.dst === undefined || route.dst === "default") continue;
    prefixes.push(parseIpv4Prefix(route.dst));
  }
  return prefixes;
}

/**
 * A /24 inside `pool` (default 10.213.0.0/16) that overlaps none of `inUse`, starting from the
 * third octet `start` and wrapping around. Throws when the whole pool is taken.
 */
export function pickFreeSubnet(inUse: readonly Ipv4Prefix[], start: number, pool = "10.213.0.0/16"): string {
  const poolPrefix = parseIpv4Prefix(pool);
  if (poolPrefix.length > 24) throw new RangeError(`pool ${pool} is smaller than a /24`);
  const count = 2 ** (24 - poolPrefix.length);
  for (let i = 0; i < count; i++) {
    const candidate = { base: (poolPrefix.base + ((start + i) % count) * 256) >>> 0, length: 24 };
    if (!inUse.some((used) => prefixesOverlap(used, candidate))) return `${formatIpv4(candidate.base)}/24`;
  }
  throw new Error(`no free /24 in ${pool}: every one overlaps an address or route of this machine`);
}

function maskOf(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}
