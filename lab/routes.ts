// Route fixtures for tests, labs and benchmarks: a decoded Route with every
// field at its "absent" value, so that a fixture names only what matters.
import { NO_ROUTE_TYPES, type Route } from "../src/sync/types.js";

export { NO_ROUTE_TYPES };

export function routeOf(dst: string, fields: Partial<Route> = {}): Route {
  return {
    dst,
    types: NO_ROUTE_TYPES,
    poolType: "VXLAN",
    dstNodeName: "",
    dstNodeIp: "",
    sameSubnet: false,
    natOutgoing: false,
    localWorkload: false,
    tunnelType: undefined,
    borrowed: false,
    ...fields,
  };
}
