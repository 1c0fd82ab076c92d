// The fake node agent for the lab demo: serves a JSON route list, then InSync,
// on every stream, and keeps the streams open until interrupted.
//   node --import tsx lab/fake-agent-cli.ts --socket /run/egt/nodeagent/socket --routes routes.json
// routes.json is an array of FakeRoute (lab/fake-agent.ts), for example
//   [{"dst": "10.65.0.0/26", "types": ["localWorkload"], "poolType": "VXLAN", "dstNodeName": "node-a",
//     "dstNodeIp": "192.0.2.10"}]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { FakeAgent, type FakeRoute } from "./fake-agent.js";

const { values } = parseArgs({
  options: { socket: { type: "string" }, routes: { type: "string" } },
  strict: true,
});
if (values.socket === undefined) {
  process.stderr.write("usage: fake-agent-cli.ts --socket PATH [--routes FILE.json]\n");
  process.exit(2);
}
const routes: FakeRoute[] =
  values.routes === undefined ? [] : (JSON.parse(readFileSync(values.routes, "utf8")) as FakeRoute[]);

const agent = await FakeAgent.start(values.socket, (stream) => {
  process.stdout.write(
    `fake agent: stream ${agent.streams.length} opened (${JSON.stringify(stream.request)}); ` +
      `sending ${routes.length} routes and InSync\n`,
  );
  for (const route of routes) stream.route(route);
  stream.inSync();
});
process.stdout.write(`fake agent: serving policy sync on ${values.socket}\n`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    void agent.stop().then(() => process.exit(0));
  });
}
