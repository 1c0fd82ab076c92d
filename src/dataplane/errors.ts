// Why a reconcile pass failed, as a value with a stable code: the pass's one
// aggregated warning and the Dataplane component's detail are built from it.
import { EgressGatewayError } from "../errors.js";

export abstract class DataplaneError extends EgressGatewayError {}

/** Reading vxlan0/eth0 state failed (vxlan0 missing, `ip` or `bridge` not installed). */
export class DataplaneReadError extends DataplaneError {
  readonly code = "EGW_ERR_DATAPLANE_READ_FAILED";
}

/** The pod has no IPv4 default route, so exit routes have no next hop. */
export class NoPodGatewayError extends DataplaneError {
  readonly code = "EGW_ERR_DATAPLANE_NO_POD_GATEWAY";
}

/** One or more batch lines were rejected by the kernel. */
export class DataplaneApplyError extends DataplaneError {
  readonly code = "EGW_ERR_DATAPLANE_APPLY_FAILED";
}

/** Anything else thrown during a pass: a bug, reported like a kernel error rather than crashing the gateway. */
export const UNEXPECTED_ERROR_CODE = "EGW_ERR_DATAPLANE_UNEXPECTED";
