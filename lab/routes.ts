// Route fixtures for tests, labs and benchmarks: a decoded Route with every
// field at its "absent" value, so that a fixture names only what matters, kept
// (addresses parsed) the way the route store keeps it; and route feeds for the
// return path without a route store.
import { checkRoute } from "../src/sync/route-check.js";
import {
  NO_ROUTE_TYPES,
  type KeptRoute,
  type Route,
  type RouteFeed,
  type RouteView,
} from "../src/sync/types.js";

export { NO_ROUTE_TYPES };

/** A decoded route with every field at its "absent" value but `dst` and `fields`, as the agent sends it. */
export const plainRoute = (dst: string, fields: Partial<Route> = {}): Route => ({
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
});

export function routeOf(dst: string, fields: Partial<Route> = {}): KeptRoute {
  const checked = checkRoute(plainRoute(dst, fields), undefined);
  if (!checked.ok) throw new Error(`route fixture ${dst}: ${checked.detail}`);
  return checked.route;
}

/** A feed that hands the return path `view` as a whole new view (as at an InSync): compared in full. */
export const wholeView = (view: RouteView): RouteFeed => ({
  view,
  takeChanges: () => ({ full: true, dsts: new Set() }),
});
