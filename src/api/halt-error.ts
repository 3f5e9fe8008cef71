// Errors of the HALT lock routes (halt-routes.ts) and of the node code behind them, each with a stable
// code and the HTTP status the node API answers it with.

export type HaltErrorCode =
  /** Another holder has the HALT lock (or a local writer kept the database busy past the wait). */
  | "EHALTBUSY"
  /** The halt id is unknown: expired, released, or the primary restarted or lost the lease. */
  | "EHALTGONE"
  /** The transaction does not continue the primary's position. */
  | "EHALTPOS"
  /** The request is malformed (missing or bad parameter, bad LTX file). */
  | "EHALTREQUEST"
  /** This node is not the primary (`POST /halt`, `POST /tx` on a replica). */
  | "ENOTPRIMARY"
  /** The primary could not be reached or answered something unexpected (replica side). */
  | "EHALTPRIMARY"
  /** The replica did not reach the primary's position in time after acquiring the lock. */
  | "EHALTCATCHUP";

const STATUS_OF_CODE: Readonly<Record<HaltErrorCode, number>> = {
  EHALTBUSY: 409,
  EHALTGONE: 409,
  EHALTPOS: 409,
  EHALTREQUEST: 400,
  ENOTPRIMARY: 503,
  EHALTPRIMARY: 502,
  EHALTCATCHUP: 504,
};

export class HaltError extends Error {
  override readonly name = "HaltError";
  readonly code: HaltErrorCode;

  constructor(code: HaltErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  /** The HTTP status of this error on the node API. */
  get status(): number {
    return STATUS_OF_CODE[this.code];
  }
}

export function isHaltError(err: unknown): err is HaltError {
  return err instanceof HaltError;
}

/**
 * A HaltError from a code sent back by a node, EHALTPRIMARY when the code is not one of ours. The
 * primary's "no such database" / "bad name" is the client's mistake, relayed as EHALTREQUEST (a 4xx):
 * a replica must not turn a client's bad `db=` into a 502.
 */
export function haltErrorFromWire(code: unknown, message: string): HaltError {
  if (code === "EDBNOTFOUND" || code === "EDBNAME") return new HaltError("EHALTREQUEST", message);
  const known = typeof code === "string" && code in STATUS_OF_CODE;
  return new HaltError(known ? (code as HaltErrorCode) : "EHALTPRIMARY", message);
}
