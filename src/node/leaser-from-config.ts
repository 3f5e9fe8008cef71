// Builds this node's Leaser from `lease.*` in the config: static | etcd | consul (src/lease). The
// identity recorded when this node holds the lease is its node id (16 hex digits, as the stream
// protocol prints it), `lease.hostname` and `lease.advertise-url`.
//
// Static is special: on a replica (`candidate: false`) `lease.hostname`/`advertise-url` name the
// configured primary, which is what StaticLeaser reports as the holder.

import type { LeaseConfig } from "../config/config.js";
import { ConsulLeaser, EtcdLeaser, LeaseError, StaticLeaser, type Leaser } from "../lease/index.js";

export interface LeaserFromConfigOptions {
  readonly lease: LeaseConfig;
  /** This node's id (16 hex digits). */
  readonly nodeId: string;
  /** Failures of lease work nobody awaits (cleanup after a loss, watch reconnects). */
  readonly onBackgroundError?: (error: Error) => void;
  /** Each failed renewal of a held lease (metrics: litefs_lease_renew_failures_total). */
  readonly onRenewFailed?: (error: unknown, msLeft: number) => void;
}

/** The Leaser `lease.type` names. Throws ELEASECONFIG when a required key is missing. */
export function leaserFromConfig(opts: LeaserFromConfigOptions): Leaser {
  const { lease, nodeId } = opts;
  const identity = { nodeId, hostname: lease.hostname, advertiseURL: lease.advertiseUrl };
  switch (lease.type) {
    case "static":
      return new StaticLeaser({ identity, candidate: lease.candidate });
    case "etcd": {
      if (lease.etcd.endpoints.length === 0 || lease.etcd.key === undefined) {
        throw new LeaseError("ELEASECONFIG", "lease.type etcd needs lease.etcd.endpoints and lease.etcd.key");
      }
      return new EtcdLeaser({
        endpoints: lease.etcd.endpoints,
        key: lease.etcd.key,
        identity,
        ttlMs: lease.ttlMs,
        lockDelayMs: lease.lockDelayMs,
        onBackgroundError: opts.onBackgroundError,
        onRenewFailed: opts.onRenewFailed,
      });
    }
    case "consul": {
      if (lease.consul.url === undefined || lease.consul.key === undefined) {
        throw new LeaseError("ELEASECONFIG", "lease.type consul needs lease.consul.url and lease.consul.key");
      }
      return new ConsulLeaser({
        url: lease.consul.url,
        key: lease.consul.key,
        identity,
        ttlMs: lease.consul.ttlMs,
        lockDelayMs: lease.consul.lockDelayMs,
        onBackgroundError: opts.onBackgroundError,
        onRenewFailed: opts.onRenewFailed,
      });
    }
  }
}
