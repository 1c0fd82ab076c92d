// The names of the readiness components (SPEC §4.1) as /readiness, /metrics and
// the logs show them: one spelling each, for the code that registers a component
// and the code that reports or logs about it.
export const COMPONENT = {
  icmpProbes: "ICMPProbes",
  httpProbes: "HTTPProbes",
  datastoreConnection: "DatastoreConnection",
  /** The always-ready row of a gateway without a node agent (SPEC §5.2). */
  policySync: "PolicySync",
  dataplane: "Dataplane",
  /** What init set up, watched at run time (src/integrity). */
  dataplaneIntegrity: "DataplaneIntegrity",
  /** Optional (READINESS_MAX_PORT_UTILIZATION): SNAT port use toward the busiest destination. */
  snatPortUtilization: "SNATPortUtilization",
} as const;

/** Not a registered component: the row and the transition that SIGTERM adds. */
export const TERMINATION = { name: "Termination", detail: "draining after termination signal" } as const;
