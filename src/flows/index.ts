// Flow logs and the live forwarded-connection count, from the pod's conntrack.
export { FlowLog, type FlowLogCounters, type FlowLogOptions, type DropReason } from "./flow-log.js";
export type { FlowRecord } from "./record.js";
export type { EventStreamLog as FlowsLog } from "./event-stream.js";
export { countLiveForwarded } from "./conntrack-table.js";
export { parseConntrackLine, type ConntrackEvent } from "./conntrack-event.js";
