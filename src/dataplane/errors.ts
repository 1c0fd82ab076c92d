// Why a reconcile pass failed, as a value with a stable code: the pass's one
// aggregated warning and the Dataplane component's detail are built from it.

export type DataplaneErrorCode =
  /** createReturnPath was given an option it cannot work with. */
  | "DATAPLANE_INVALID_OPTION"
  /** Reading vxlan0/eth0 state failed (vxlan0 missing, `ip` or `bridge` not installed). */
  | "DATAPLANE_READ_FAILED"
  /** The pod has no IPv4 default route, so exit routes have no next hop. */
  | "DATAPLANE_NO_POD_GATEWAY"
  /** One or more batch lines were rejected by the kernel. */
  | "DATAPLANE_APPLY_FAILED"
  /** Anything else thrown during a pass: a bug, reported like a kernel error rather than crashing the gateway. */
  | "DATAPLANE_UNEXPECTED";

export class DataplaneError extends Error {
  override readonly name = "DataplaneError";

  constructor(
    readonly code: DataplaneErrorCode,
    message: string,
  ) {
    super(message);
  }
}
