// Public API of the FUSE library: a pure-TypeScript implementation of the FUSE kernel protocol over
// /dev/fuse. See docs/fuse.md for the design and session.ts for the threading model.

export { FuseSession, type FuseSessionOptions } from "./session.js";
export type {
  AttrReply,
  ConnectionInfo,
  CreateReply,
  Entry,
  FileAttributes,
  FileLock,
  FuseFileSystem,
  LockRequest,
  MaybePromise,
  OpenReply,
  ReadInfo,
  ReleaseInfo,
  RequestContext,
  SetattrChanges,
  StatfsReply,
  WriteInfo,
} from "./file-system.js";
export { DirectoryListing, DirectoryPlusListing, NAME_MAX } from "./directory-listing.js";
export { FuseError, FuseSessionError, errnoOf, type ErrnoName, type FuseSessionErrorCode } from "./errors.js";
export type { InvalidateInodeRange } from "./notification.js";
export { FUSE_ROOT_ID, OFFSET_MAX } from "./kernel-abi.js";
export { clearStaleMount, findMount, isDisconnected } from "./mount-command.js";
