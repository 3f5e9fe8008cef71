// The lease layer's public surface: the Leaser contract, its three implementations, the errors callers
// match on, and the clock seam. Knows nothing of SQLite.
export { type Clock, systemClock, type TimerHandle } from "./clock.js";
export { CONSUL_LEASE_DEFAULTS, ConsulLeaser, type ConsulLeaserOptions } from "./consul-leaser.js";
export { ETCD_LEASE_DEFAULTS, EtcdLeaser, type EtcdLeaserOptions } from "./etcd-leaser.js";
export {
  isLeaseError,
  LeaseError,
  type LeaseErrorCode,
  LeaseExistsError,
  LeaseHandoffPendingError,
  LeaseLostError,
  type LeaseLostReason,
} from "./lease-error.js";
export {
  LeaseKeeper,
  type LeaseKeeperOptions,
  type RenewalConfirmation,
  type RenewOnce,
} from "./lease-keeper.js";
export type { AcquireOptions, Lease, Leaser, LeaseState, NodeIdentity, PrimaryInfo } from "./leaser.js";
export { STATIC_LEASE_EPOCH, StaticLeaser, type StaticLeaserOptions } from "./static-leaser.js";
