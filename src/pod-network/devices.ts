// The pod's two network devices, as SPEC §3 and §5.1 name them: init creates
// vxlan0 over eth0 and writes the SNAT rules for eth0; the return path programs
// routes, neighbours and FDB entries on vxlan0 and exit routes on eth0.

/** The pod's own interface (the CNI's veth end): egress leaves by it, VXLAN from client nodes arrives on it. */
export const POD_DEVICE = "eth0";

/** The VXLAN device client nodes tunnel to. */
export const VXLAN_DEVICE = "vxlan0";
